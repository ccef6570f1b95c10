"""Event contracts shared by carelink's services and the hospitals.

`hospital_v1` is the frozen public interface (../shared/hospital-contract-v1.md);
`cases` holds the internal events on `care.cases`; `cloudevents` reads and
writes the binary-mode envelope; `topics` names every topic in one place.
"""
