"""One-on-one calls: the signalling socket, the online directory and ICE server settings.

The server only signals (offers, answers, ICE candidates, call state); media flows between
the browsers, through TURN when configured.
"""
