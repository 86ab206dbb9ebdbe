"""The attribution engine on PySpark DataFrames (`malt attribute --engine spark`): the same
output as the in-memory engine, for logs that do not fit in one process.

    session   the session it runs on (active, spark-submit's, or --master)
    logs      the readers, on any path Spark reads
    engine    journeys, the rules and dda as Spark SQL (the dda fit on aggregates)
    mac       the MAC writer, day files written by Spark
    pipeline  the Spark engine of `attribute_logs`
"""
