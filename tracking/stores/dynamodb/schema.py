"""The DynamoDB tables of the metadata store, declared once as plain data.

``table_definitions`` returns CreateTable parameters: ``DynamoDBMetadataStore.initialize`` creates
the tables from them and a test checks that ``template.yaml`` declares the same keys, so the
deployed tables and the code cannot drift apart. No boto3 or pynamodb import here: the declaration
is readable (and testable) without the AWS extras.

Tables, for a prefix ``p``:

``p-tracking`` (``pk`` S / ``sk`` S, GSI ``gsi1`` on ``gsi1pk`` S / ``gsi1sk`` S, projection ALL)
    ==========================  =====================  =================================
    item                        pk / sk                gsi1pk / gsi1sk
    ==========================  =====================  =================================
    experiment                  ``EXP#{name}`` / EXP   ``EXPERIMENTS`` / ``{name}``
    run                         ``RUN#{run_id}`` / RUN ``RUNS#{experiment_id}`` /
                                                       ``{inverted start:016}#{run_id}``
    param, tag, latest metric   ``RUN#{run_id}`` /     -
                                ``PARAM#k``, ``TAG#k``, ``METRIC#k``
    dataset, artifact record    ``RUN#{run_id}`` /     -
                                ``DATASET#n``, ``ARTIFACT#n``
    registered model            ``MODEL#{name}`` /     ``MODELS`` / ``{name}``
                                MODEL
    model version               ``MODEL#{name}`` /     -
                                ``V#{version:010}``
    alias                       ``MODEL#{name}`` /     -
                                ``ALIAS#{alias}``
    registry history entry      ``MODEL#{name}`` /     -
                                ``HIST#{ms:013}#{ns:019}#{change_id}``
    traffic policy              ``MODEL#{name}`` /     -
                                TRAFFIC
    outbox event                ``EVENT#{event_id}`` / ``EVENTS#{status}`` /
                                EVENT                  ``{ms:013}#{event_id}``
    ==========================  =====================  =================================

    Versions sort numerically (newest first by a backward Query); history sorts by time, the
    nanosecond clock of the writing store keeping one process's entries of one millisecond in
    write order. A model item holds only counters, description and tags, so it does not grow
    with its versions. Outbox events are written in the registry change's own transaction;
    the table's stream (NEW_IMAGE) carries their inserts to the EventBridge function.

``p-metrics`` (``pk`` S / ``step`` N)
    Chunk items: ``pk`` = ``{run_id}#{key}#C``, ``step`` = the chunk's first step, one attribute
    ``p{offset}`` per point (``history.py``), so ``(run, key, step)`` is one attribute's identity:
    writing the same point again overwrites it and a retried batch never duplicates. Stores of
    the previous release hold one item per point (``pk`` = ``{run_id}#{key}``, ``step`` = the
    step) until ``tracking init`` converts them (``upgrade.py``).
"""

from __future__ import annotations

from typing import Any

TRACKING_TABLE_SUFFIX = "tracking"
METRICS_TABLE_SUFFIX = "metrics"
GSI1_NAME = "gsi1"
BILLING_MODE = "PAY_PER_REQUEST"
#: The tracking table's stream: outbox inserts reach EventBridge through it (template.yaml's
#: EventsFunction); ``tracking init`` enables it on a table created without one.
TRACKING_STREAM = {"StreamEnabled": True, "StreamViewType": "NEW_IMAGE"}


def tracking_table_name(prefix: str) -> str:
    """Name of the table holding experiments, runs and everything stored per run."""
    return f"{prefix}-{TRACKING_TABLE_SUFFIX}"


def metrics_table_name(prefix: str) -> str:
    """Name of the table holding metric history (chunk items, see ``history``)."""
    return f"{prefix}-{METRICS_TABLE_SUFFIX}"


def table_definitions(prefix: str) -> list[dict[str, Any]]:
    """Return the CreateTable parameters of every table of the store, for ``prefix``.

    Args:
        prefix: the table prefix of ``TRACKING_URI=dynamodb://<prefix>``.

    Returns:
        One dict per table, with ``TableName``, ``KeySchema``, ``AttributeDefinitions``,
        ``GlobalSecondaryIndexes`` and ``StreamSpecification`` (tracking table only) and
        ``BillingMode``, ready to be passed
        to DynamoDB's ``CreateTable``.
    """
    return [
        {
            "TableName": tracking_table_name(prefix),
            "KeySchema": [
                {"AttributeName": "pk", "KeyType": "HASH"},
                {"AttributeName": "sk", "KeyType": "RANGE"},
            ],
            "AttributeDefinitions": [
                {"AttributeName": "pk", "AttributeType": "S"},
                {"AttributeName": "sk", "AttributeType": "S"},
                {"AttributeName": "gsi1pk", "AttributeType": "S"},
                {"AttributeName": "gsi1sk", "AttributeType": "S"},
            ],
            "GlobalSecondaryIndexes": [
                {
                    "IndexName": GSI1_NAME,
                    "KeySchema": [
                        {"AttributeName": "gsi1pk", "KeyType": "HASH"},
                        {"AttributeName": "gsi1sk", "KeyType": "RANGE"},
                    ],
                    "Projection": {"ProjectionType": "ALL"},
                }
            ],
            "BillingMode": BILLING_MODE,
            "StreamSpecification": dict(TRACKING_STREAM),
        },
        {
            "TableName": metrics_table_name(prefix),
            "KeySchema": [
                {"AttributeName": "pk", "KeyType": "HASH"},
                {"AttributeName": "step", "KeyType": "RANGE"},
            ],
            "AttributeDefinitions": [
                {"AttributeName": "pk", "AttributeType": "S"},
                {"AttributeName": "step", "AttributeType": "N"},
            ],
            "BillingMode": BILLING_MODE,
        },
    ]
