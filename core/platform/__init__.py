"""The floor's machinery: the job queue, schedules, locks, leases, storage, the unit of work, the one MLflow adapter."""
