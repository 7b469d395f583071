"""The pynamodb classes of one store's tables, built per store (never at import)."""

from __future__ import annotations

import os
from typing import Any

import botocore.session
from pynamodb.attributes import ListAttribute, MapAttribute, NumberAttribute, UnicodeAttribute
from pynamodb.indexes import AllProjection, GlobalSecondaryIndex
from pynamodb.models import Model

from tracking.stores.dynamodb import schema

DEFAULT_REGION = "us-east-1"


def _resolve_region(region: str | None) -> str:
    if region:
        return region
    # botocore's own "region" setting reads AWS_DEFAULT_REGION and the profile, but not
    # AWS_REGION, which is the one Lambda and most containers set.
    from_env = os.environ.get("AWS_REGION")
    if from_env:
        return from_env
    configured = botocore.session.get_session().get_config_variable("region")
    return str(configured) if configured else DEFAULT_REGION


# -- pynamodb classes, one set per store --------------------------------------------------------


class _Models:
    """The pynamodb classes bound to one store's tables and connection settings."""

    def __init__(
        self,
        prefix: str,
        *,
        region: str,
        host: str | None,
        connect_timeout_seconds: float,
        read_timeout_seconds: float,
        max_retry_attempts: int,
    ) -> None:
        class _Settings:
            # Model.Meta is read by pynamodb when it builds the class's connection.
            region = ""
            host: str | None = None
            connect_timeout_seconds = 0.0
            read_timeout_seconds = 0.0
            max_retry_attempts = 0

        _Settings.region = region
        _Settings.host = host
        _Settings.connect_timeout_seconds = connect_timeout_seconds
        _Settings.read_timeout_seconds = read_timeout_seconds
        _Settings.max_retry_attempts = max_retry_attempts

        class Gsi1(GlobalSecondaryIndex[Any]):  # type: ignore[no-untyped-call]
            class Meta:
                index_name = schema.GSI1_NAME
                projection = AllProjection()

            gsi1pk = UnicodeAttribute(hash_key=True)
            gsi1sk = UnicodeAttribute(range_key=True)

        class TrackingItem(Model):
            """Any item of the tracking table; which attributes are set depends on ``sk``."""

            class Meta(_Settings):
                table_name = schema.tracking_table_name(prefix)

            pk = UnicodeAttribute(hash_key=True)
            sk = UnicodeAttribute(range_key=True)
            gsi1pk = UnicodeAttribute(null=True)
            gsi1sk = UnicodeAttribute(null=True)
            gsi1 = Gsi1()
            # experiment
            experiment_id = UnicodeAttribute(null=True)
            name = UnicodeAttribute(null=True)
            created_at = NumberAttribute(null=True)
            tags = MapAttribute[str, str](null=True)  # type: ignore[no-untyped-call]
            # run
            run_id = UnicodeAttribute(null=True)
            experiment_name = UnicodeAttribute(null=True)
            run_name = UnicodeAttribute(null=True)
            status = UnicodeAttribute(null=True)
            start_time = NumberAttribute(null=True)
            end_time = NumberAttribute(null=True)
            parent_run_id = UnicodeAttribute(null=True)
            # run summary (see summary.py): state ok | overflow, its size, and its maps
            s_state = UnicodeAttribute(null=True)
            s_bytes = NumberAttribute(null=True)
            s_params = MapAttribute[str, str](null=True)  # type: ignore[no-untyped-call]
            s_tags = MapAttribute[str, str](null=True)  # type: ignore[no-untyped-call]
            s_metrics = MapAttribute[str, str](null=True)  # type: ignore[no-untyped-call]
            s_datasets = MapAttribute[str, str](null=True)  # type: ignore[no-untyped-call]
            s_artifacts = MapAttribute[str, str](null=True)  # type: ignore[no-untyped-call]
            # CHUNKED_FORMAT (history.py): the run's metric history is only in chunk items
            history_format = NumberAttribute(null=True)
            # param / tag value; latest metric value as repr(float) (see MetricPoint.value)
            value = UnicodeAttribute(null=True)
            step = NumberAttribute(null=True)
            timestamp = NumberAttribute(null=True)
            # dataset / artifact record
            uri = UnicodeAttribute(null=True)
            digest = UnicodeAttribute(null=True)
            digest_algorithm = UnicodeAttribute(null=True)
            size = NumberAttribute(null=True)
            version_id = UnicodeAttribute(null=True)
            logged_at = NumberAttribute(null=True)
            sha256 = UnicodeAttribute(null=True)
            # registered model (also name, created_at, tags)
            latest_version = NumberAttribute(null=True)
            updated_at = NumberAttribute(null=True)
            description = UnicodeAttribute(null=True)
            # model version (also run_id, experiment_name, sha256, size, description, tags)
            version = NumberAttribute(null=True)
            artifact_name = UnicodeAttribute(null=True)
            artifact_uri = UnicodeAttribute(null=True)
            flavor = UnicodeAttribute(null=True)
            # JSON text: free-form, so neither pynamodb nor DynamoDB need to know its shape
            signature_json = UnicodeAttribute(null=True, attr_name="signature")
            metadata_json = UnicodeAttribute(null=True, attr_name="metadata")
            stage = UnicodeAttribute(null=True)
            actor = UnicodeAttribute(null=True)
            # alias (also version); previous targets, newest last, bounded by the registry
            alias = UnicodeAttribute(null=True)
            # pynamodb types ``of`` as the element's Python type, yet requires an Attribute class.
            previous = ListAttribute[float](of=NumberAttribute, null=True)  # type: ignore[arg-type]
            revision = UnicodeAttribute(null=True)
            # history entry (also name, alias, actor, timestamp)
            action = UnicodeAttribute(null=True)
            from_version = NumberAttribute(null=True)
            to_version = NumberAttribute(null=True)
            reason = UnicodeAttribute(null=True)
            change_id = UnicodeAttribute(null=True)
            # idempotency record (also status: in_progress / completed); expires_at is the
            # table's TTL attribute, in seconds since the epoch
            fingerprint = UnicodeAttribute(null=True)
            response_status = NumberAttribute(null=True)
            response_body = UnicodeAttribute(null=True)
            expires_at = NumberAttribute(null=True)
            # traffic policy (pk MODEL#name, sk TRAFFIC): the TrafficPolicy as JSON, and its
            # revision apart, for the optimistic condition
            policy_json = UnicodeAttribute(null=True, attr_name="policy")
            traffic_revision = NumberAttribute(null=True)
            # outbox event (also name, status): the RegistryEvent as JSON and delivery state
            event_json = UnicodeAttribute(null=True, attr_name="event")
            event_type = UnicodeAttribute(null=True)
            attempts = NumberAttribute(null=True)
            last_error = UnicodeAttribute(null=True)
            next_attempt_at = NumberAttribute(null=True)
            delivered_json = UnicodeAttribute(null=True, attr_name="delivered_to")

        class MetricPoint(Model):
            """One point of a metric's history."""

            class Meta(_Settings):
                table_name = schema.metrics_table_name(prefix)

            pk = UnicodeAttribute(hash_key=True)
            step = NumberAttribute(range_key=True)
            # A string holding repr(float): exact round trip, and DynamoDB numbers cannot hold
            # the whole float range (their exponent stops at 1e125 / 1e-130).
            value = UnicodeAttribute()
            timestamp = NumberAttribute()

        self.TrackingItem = TrackingItem
        self.MetricPoint = MetricPoint
