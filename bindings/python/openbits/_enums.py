"""The library's enumerations as IntEnums; their values come from the generated header table."""

from __future__ import annotations

from enum import IntEnum, IntFlag
from typing import Type, TypeVar, Union

from . import _bindings as b

__all__ = [
    "JobState",
    "JobType",
    "JobPriority",
    "ErrorContext",
    "EventKind",
    "NotifyFlags",
    "SecurityFlags",
    "AuthTarget",
    "AuthScheme",
    "CostState",
    "TransferPolicy",
]


class JobState(IntEnum):
    """BG_JOB_STATE: a job's state."""

    QUEUED = b.BITS_JOB_STATE_QUEUED
    CONNECTING = b.BITS_JOB_STATE_CONNECTING
    TRANSFERRING = b.BITS_JOB_STATE_TRANSFERRING
    SUSPENDED = b.BITS_JOB_STATE_SUSPENDED
    ERROR = b.BITS_JOB_STATE_ERROR
    TRANSIENT_ERROR = b.BITS_JOB_STATE_TRANSIENT_ERROR
    TRANSFERRED = b.BITS_JOB_STATE_TRANSFERRED
    ACKNOWLEDGED = b.BITS_JOB_STATE_ACKNOWLEDGED
    CANCELLED = b.BITS_JOB_STATE_CANCELLED

    @property
    def is_final(self) -> bool:
        """ACKNOWLEDGED or CANCELLED: the job has left the queue."""
        return self in (JobState.ACKNOWLEDGED, JobState.CANCELLED)

    @property
    def is_active(self) -> bool:
        """QUEUED, CONNECTING or TRANSFERRING: the manager is working on it."""
        return self in (JobState.QUEUED, JobState.CONNECTING, JobState.TRANSFERRING)


class JobType(IntEnum):
    """BG_JOB_TYPE. Only DOWNLOAD is implemented; the others raise NotSupported."""

    DOWNLOAD = b.BITS_JOB_TYPE_DOWNLOAD
    UPLOAD = b.BITS_JOB_TYPE_UPLOAD
    UPLOAD_REPLY = b.BITS_JOB_TYPE_UPLOAD_REPLY


class JobPriority(IntEnum):
    """BG_JOB_PRIORITY: the scheduler serves FOREGROUND first, then HIGH, NORMAL, LOW."""

    FOREGROUND = b.BITS_JOB_PRIORITY_FOREGROUND
    HIGH = b.BITS_JOB_PRIORITY_HIGH
    NORMAL = b.BITS_JOB_PRIORITY_NORMAL
    LOW = b.BITS_JOB_PRIORITY_LOW


class ErrorContext(IntEnum):
    """BG_ERROR_CONTEXT: where a job's error happened."""

    NONE = b.BITS_ERROR_CONTEXT_NONE
    UNKNOWN = b.BITS_ERROR_CONTEXT_UNKNOWN
    GENERAL_QUEUE_MANAGER = b.BITS_ERROR_CONTEXT_GENERAL_QUEUE_MANAGER
    QUEUE_MANAGER_NOTIFICATION = b.BITS_ERROR_CONTEXT_QUEUE_MANAGER_NOTIFICATION
    LOCAL_FILE = b.BITS_ERROR_CONTEXT_LOCAL_FILE
    REMOTE_FILE = b.BITS_ERROR_CONTEXT_REMOTE_FILE
    GENERAL_TRANSPORT = b.BITS_ERROR_CONTEXT_GENERAL_TRANSPORT
    REMOTE_APPLICATION = b.BITS_ERROR_CONTEXT_REMOTE_APPLICATION
    SERVER_CERTIFICATE_CALLBACK = b.BITS_ERROR_CONTEXT_SERVER_CERTIFICATE_CALLBACK


class EventKind(IntEnum):
    """The kind of an Event: BITS's BG_NOTIFY_* flag values."""

    JOB_TRANSFERRED = b.BITS_NOTIFY_JOB_TRANSFERRED
    JOB_ERROR = b.BITS_NOTIFY_JOB_ERROR
    JOB_MODIFICATION = b.BITS_NOTIFY_JOB_MODIFICATION
    FILE_TRANSFERRED = b.BITS_NOTIFY_FILE_TRANSFERRED


class NotifyFlags(IntFlag):
    """BG_NOTIFY_* flags of a job (Job.notify_flags)."""

    JOB_TRANSFERRED = b.BITS_NOTIFY_JOB_TRANSFERRED
    JOB_ERROR = b.BITS_NOTIFY_JOB_ERROR
    DISABLE = b.BITS_NOTIFY_DISABLE
    JOB_MODIFICATION = b.BITS_NOTIFY_JOB_MODIFICATION
    FILE_TRANSFERRED = b.BITS_NOTIFY_FILE_TRANSFERRED
    FILE_RANGES_TRANSFERRED = b.BITS_NOTIFY_FILE_RANGES_TRANSFERRED


class SecurityFlags(IntFlag):
    """Job.security_flags: one BG_HTTP_REDIRECT_POLICY_*, optionally with
    REDIRECT_POLICY_ALLOW_HTTPS_TO_HTTP, and BG_SSL_* flags. SSL_ENABLE_CRL_CHECK makes the job's
    revocation list strict; an SSL_IGNORE_* flag hands that certificate failure to the job's
    server certificate callback (without one it relaxes nothing)."""

    REDIRECT_POLICY_ALLOW_SILENT = b.BITS_HTTP_REDIRECT_POLICY_ALLOW_SILENT
    REDIRECT_POLICY_ALLOW_REPORT = b.BITS_HTTP_REDIRECT_POLICY_ALLOW_REPORT
    REDIRECT_POLICY_DISALLOW = b.BITS_HTTP_REDIRECT_POLICY_DISALLOW
    REDIRECT_POLICY_ALLOW_HTTPS_TO_HTTP = b.BITS_HTTP_REDIRECT_POLICY_ALLOW_HTTPS_TO_HTTP
    SSL_ENABLE_CRL_CHECK = b.BITS_SSL_ENABLE_CRL_CHECK
    SSL_IGNORE_CERT_CN_INVALID = b.BITS_SSL_IGNORE_CERT_CN_INVALID
    SSL_IGNORE_CERT_DATE_INVALID = b.BITS_SSL_IGNORE_CERT_DATE_INVALID
    SSL_IGNORE_UNKNOWN_CA = b.BITS_SSL_IGNORE_UNKNOWN_CA
    SSL_IGNORE_CERT_WRONG_USAGE = b.BITS_SSL_IGNORE_CERT_WRONG_USAGE


class AuthTarget(IntEnum):
    """BG_AUTH_TARGET: whom credentials are for."""

    SERVER = b.BITS_AUTH_TARGET_SERVER
    PROXY = b.BITS_AUTH_TARGET_PROXY


class AuthScheme(IntEnum):
    """BG_AUTH_SCHEME. openbits supports BASIC only (the others raise NotSupported)."""

    BASIC = b.BITS_AUTH_SCHEME_BASIC
    DIGEST = b.BITS_AUTH_SCHEME_DIGEST
    NTLM = b.BITS_AUTH_SCHEME_NTLM
    NEGOTIATE = b.BITS_AUTH_SCHEME_NEGOTIATE
    PASSPORT = b.BITS_AUTH_SCHEME_PASSPORT


E = TypeVar("E", bound=IntEnum)


def enum_or_int(cls: Type[E], value: int) -> Union[E, int]:
    """The member for `value`, or the plain int if a newer library sent a value this binding does
    not know yet (never an exception for that)."""
    try:
        return cls(value)
    except ValueError:
        return int(value)


class CostState(IntFlag):
    """BITS_COST_STATE_*: what the network costs (Manager.network_cost takes one) and the bits of
    a job's transfer policy."""

    UNRESTRICTED = b.BITS_COST_STATE_UNRESTRICTED
    CAPPED_USAGE_UNKNOWN = b.BITS_COST_STATE_CAPPED_USAGE_UNKNOWN
    BELOW_CAP = b.BITS_COST_STATE_BELOW_CAP
    NEAR_CAP = b.BITS_COST_STATE_NEAR_CAP
    OVERCAP_CHARGED = b.BITS_COST_STATE_OVERCAP_CHARGED
    OVERCAP_THROTTLED = b.BITS_COST_STATE_OVERCAP_THROTTLED
    USAGE_BASED = b.BITS_COST_STATE_USAGE_BASED
    ROAMING = b.BITS_COST_STATE_ROAMING
    IGNORE_CONGESTION = b.BITS_COST_OPTION_IGNORE_CONGESTION


class TransferPolicy(IntEnum):
    """BITS_JOB_TRANSFER_POLICY_*: the usual Job.transfer_policy values (ALWAYS is the default)."""

    ALWAYS = b.BITS_JOB_TRANSFER_POLICY_ALWAYS
    NOT_ROAMING = b.BITS_JOB_TRANSFER_POLICY_NOT_ROAMING
    NO_SURCHARGE = b.BITS_JOB_TRANSFER_POLICY_NO_SURCHARGE
    STANDARD = b.BITS_JOB_TRANSFER_POLICY_STANDARD
    UNRESTRICTED = b.BITS_JOB_TRANSFER_POLICY_UNRESTRICTED
