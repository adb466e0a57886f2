import dagster as dg

# One partition per collection date. end_offset=1 makes today's partition exist, so the daily
# schedule submits and collects for the day it runs on.
daily_partitions = dg.DailyPartitionsDefinition(start_date="2025-01-01", end_offset=1)
