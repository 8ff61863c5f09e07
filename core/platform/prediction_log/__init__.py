"""The prediction log: every served prediction, durable on acknowledgement, in two tiers.

Infrastructure every stage uses: serving writes it, monitoring, shadow comparison, compliance and the
export read it. It imports no stage.

    journal     the per-process segment files a request is durable in before it answers
    writer      the rows of a served request and the background thread that inserts them
    parquet     the cold tier: hourly Parquet partitions, compaction, request ids
    reads       reads over both tiers (a model's window, a request, the newest, counts, labels)
    export      a model's logged predictions to one Parquet or CSV file
    retention   deleting rows, labels and refusals older than the retention

Importing the package does no work (each module is imported where used).
"""
