"""The prediction log: every served prediction, durable on acknowledgement, in two tiers.

Infrastructure every stage uses: serving writes it; monitoring, the shadow comparison, compliance and
the export read it. It imports no stage.

    journal     the per-process segment files a request is durable in before it answers
    writer      the rows of a served request and the background thread that inserts them
    parquet     the cold tier: hourly Parquet partitions, compaction, reads over both tiers, export

Importing the package does no work (each module is imported where used).
"""
