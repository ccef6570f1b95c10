"""The medical social workers' portal: hospitals without an event pipeline refer
patients through a web form that speaks the hospital contract (issue 13).

A deployable with its own database and its own users (each user belongs to one
hospital). It stands in for the hospital's systems: submissions and corrections
go out as the contract's events on `hospital.<id>.referrals` with the hospital's
own `ce_source`, through its outbox, and it follows `hospital.<id>.updates` of the
hospitals it serves (services/lib/hospitalside). It never calls a service's
database or API: the contract is its only interface.
"""
