"""CCS over CAN: charger-sim's documented bridge profile for a DIN SPEC 70121 DC session.

On the cable CCS speaks DIN 70121 / ISO 15118 over power-line communication, not CAN.  What this
package puts on CAN is a *bridge profile*: the DIN message sequence collapsed into a stage number
and eight cyclic frames (``dbc/ccs.dbc``), between the charger side (SECC + power stage,
:mod:`.charger`) and the vehicle side (EVCC + BMS, :mod:`.vehicle`).  The pilot and proximity
signals are modelled in :mod:`.electrical`; stages in :mod:`.states`, timers in :mod:`.timing`
(keyed by standard revision), stop reasons in :mod:`.stops`, codings in :mod:`.bridge`.
"""
