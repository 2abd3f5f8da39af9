-- One database per service: the orchestrator's, and one for each participant.
CREATE DATABASE orders;
CREATE DATABASE payments;
CREATE DATABASE inventory;
CREATE DATABASE shipping;
