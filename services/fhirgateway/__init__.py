"""FHIR gateway: hospitals' EHRs refer through a FHIR R4 API (Task + ServiceRequest,
the closed-loop referral of the HL7 SDOH Clinical Care guide); the gateway publishes
the contract's hospital events and follows the updates back into the Tasks."""
