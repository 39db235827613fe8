"""The ladder's rules, each in one module: the protocol (protocol.py), what may follow what
(machine.py), who may do what (access.py), when things fall due (due.py)."""
