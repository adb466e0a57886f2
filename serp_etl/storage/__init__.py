"""Where the warehouse's Parquet parts live: the data dir (``local``) or an S3-compatible bucket
(``objects``), behind one interface (``base.Storage``); ``location`` picks one."""
