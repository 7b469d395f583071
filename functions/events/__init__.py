"""The stream function: outbox inserts from DynamoDB Streams onto EventBridge."""
