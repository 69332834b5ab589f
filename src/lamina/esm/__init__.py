"""Event source mappings: pollers that read queues, streams and database changes and invoke functions.

Layout (one concept per module):
  contracts.py   the seams between the parts (records, sources, the invoke and failure callables)
  validate.py    CreateEventSourceMapping/Update field validation, as AWS answers (lambda-spec §9.1)
  filters.py     Lambda's filter-pattern syntax (lambda-spec §9.2)
  manager.py     runs one poller per enabled mapping; state transitions; restarts after a crash
  sqs.py         the queue poller (receive, batch, delete, partial failures, visibility)
  stream.py      the shard poller (ordered batches, checkpoint, retry, bisect, record age, on-failure)
  sources/       shard sources: kinesis.py, dynamodb_streams.py, postgres.py
"""
