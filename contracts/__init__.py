"""Event contracts shared by carelink's services and the hospitals.

`hospital_v1` is the frozen public interface (../shared/hospital-contract-v1.md);
`fhir_task` is its status state machine (the legal moves, and checks of a feed) and
`reasons` its bilingual reason codes; `cases` holds the internal events on
`care.cases`; `cloudevents` reads and writes the binary-mode envelope; `topics`
names every topic in one place.
"""
