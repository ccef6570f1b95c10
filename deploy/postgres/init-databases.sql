-- carelink: one database per service, each owned by its own login role.
--
-- Why: a service never reads another service's tables (design.md). Separate
-- databases plus separate roles make that a permission, not a convention:
-- carelink_intake can neither connect to nor see carelink_referral.
--
-- Runs once, from /docker-entrypoint-initdb.d, when the postgres data volume is
-- still empty (`docker compose down -v` to run it again). The entrypoint runs it
-- with psql as the superuser against the `postgres` database, in autocommit
-- mode, which CREATE DATABASE needs.
--
-- Passwords are not written here: psql's \getenv (psql 15+, the postgres:17
-- image ships psql 17) reads them from the postgres container's environment, so
-- docker-compose.yml (or a .env beside it) is the one place they are set and
-- the services' CARELINK_DATABASE_URL uses the same variables.

\set ON_ERROR_STOP on

\getenv intake_password INTAKE_DB_PASSWORD
\getenv referral_password REFERRAL_DB_PASSWORD
\getenv scheduling_password SCHEDULING_DB_PASSWORD
\getenv outcome_password OUTCOME_DB_PASSWORD
\getenv portal_password PORTAL_DB_PASSWORD
\getenv fhirgateway_password FHIRGATEWAY_DB_PASSWORD

-- Fail loudly, naming the variable, instead of with a syntax error at ":'...'".
\if :{?intake_password}
\else
  DO $$ BEGIN RAISE EXCEPTION 'INTAKE_DB_PASSWORD is not set in the postgres container'; END $$;
\endif
\if :{?referral_password}
\else
  DO $$ BEGIN RAISE EXCEPTION 'REFERRAL_DB_PASSWORD is not set in the postgres container'; END $$;
\endif
\if :{?scheduling_password}
\else
  DO $$ BEGIN RAISE EXCEPTION 'SCHEDULING_DB_PASSWORD is not set in the postgres container'; END $$;
\endif
\if :{?outcome_password}
\else
  DO $$ BEGIN RAISE EXCEPTION 'OUTCOME_DB_PASSWORD is not set in the postgres container'; END $$;
\endif
\if :{?portal_password}
\else
  DO $$ BEGIN RAISE EXCEPTION 'PORTAL_DB_PASSWORD is not set in the postgres container'; END $$;
\endif
\if :{?fhirgateway_password}
\else
  DO $$ BEGIN RAISE EXCEPTION 'FHIRGATEWAY_DB_PASSWORD is not set in the postgres container'; END $$;
\endif

-- Each role owns its database, so its migrations can create tables in the
-- public schema (PostgreSQL 15+ gives `public` to the database owner) without
-- any further grants. No role may create databases or roles.
-- REVOKE ... FROM PUBLIC takes away the default CONNECT/TEMPORARY every role
-- would otherwise have on every database.

CREATE ROLE carelink_intake LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE PASSWORD :'intake_password';
CREATE DATABASE carelink_intake OWNER carelink_intake;
REVOKE ALL ON DATABASE carelink_intake FROM PUBLIC;

CREATE ROLE carelink_referral LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE PASSWORD :'referral_password';
CREATE DATABASE carelink_referral OWNER carelink_referral;
REVOKE ALL ON DATABASE carelink_referral FROM PUBLIC;

CREATE ROLE carelink_scheduling LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE PASSWORD :'scheduling_password';
CREATE DATABASE carelink_scheduling OWNER carelink_scheduling;
REVOKE ALL ON DATABASE carelink_scheduling FROM PUBLIC;

CREATE ROLE carelink_outcome LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE PASSWORD :'outcome_password';
CREATE DATABASE carelink_outcome OWNER carelink_outcome;
REVOKE ALL ON DATABASE carelink_outcome FROM PUBLIC;

-- The hospital-side deployables (issues 13, 14) own their databases like a service.
CREATE ROLE carelink_portal LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE PASSWORD :'portal_password';
CREATE DATABASE carelink_portal OWNER carelink_portal;
REVOKE ALL ON DATABASE carelink_portal FROM PUBLIC;

CREATE ROLE carelink_fhirgateway LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE PASSWORD :'fhirgateway_password';
CREATE DATABASE carelink_fhirgateway OWNER carelink_fhirgateway;
REVOKE ALL ON DATABASE carelink_fhirgateway FROM PUBLIC;
