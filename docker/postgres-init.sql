-- One database per server: Prefect and MLflow each migrate their own schema into it.
-- The postgres image runs this file once, as POSTGRES_USER, when it initialises an
-- empty data volume; to re-run it, remove the volume (docker compose down -v).
CREATE DATABASE prefect;
CREATE DATABASE mlflow;
