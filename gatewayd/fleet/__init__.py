"""SIMs in the field: modems found at run time, settings bound to the SIM, health alarms."""
