-- agentmarket install script, built by the Makefile from extension/*.sql.
-- Do not edit the built file; edit the parts.

\echo Use "CREATE EXTENSION agentmarket CASCADE" to load this file. \quit
