"""Stage 1, data: datasets and their versions, tables, schemas, the quality certificate, profiles, SQL
sources, lineage.
"""
