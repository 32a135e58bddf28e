"""Physical side of a session: the connector's control lines, the DC link and the charger power stage.

Pure objects shared by the charger and vehicle cores of a session; no I/O, no clock.
"""
