"""Gecko's exception hierarchy: every error Gecko raises is a `GeckoError`."""

from __future__ import annotations

__all__ = (
    "GeckoError",
    "ConfigurationError",
    "PluginError",
    "PluginNotFoundError",
    "PluginLoadError",
    "DuplicatePluginError",
    "StorageError",
    "InvalidStorageURLError",
    "InvalidKeyError",
    "InvalidValueError",
    "StorageClosedError",
    "StorageUnavailableError",
    "VersionConflictError",
    "FencingError",
    "VectorStoreError",
    "DimensionMismatchError",
    "InvalidFilterError",
    "ModelError",
    "ModelAuthenticationError",
    "ModelRateLimitError",
    "ModelTimeoutError",
    "ContextLengthError",
    "ModelBadRequestError",
    "ModelServerError",
    "ModelConnectionError",
    "ModelOutputError",
    "UnsupportedRequestError",
    "UsageLimitExceeded",
    "ToolError",
    "UnknownToolError",
    "ToolArgumentsError",
    "ToolExecutionError",
    "ToolServerError",
    "ToolTimeoutError",
    "AgentError",
    "MaxTurnsExceeded",
    "ToolLoopDetected",
    "StructuredOutputError",
    "StructuredOutputInvalid",
    "ApprovalError",
    "SummarizationError",
    "PromptError",
    "WorkflowError",
    "WorkflowDefinitionError",
    "WorkflowStateConflict",
    "WorkflowMaxStepsExceeded",
    "WorkflowTimeoutError",
    "CheckpointError",
    "CorruptCheckpointError",
    "UnstorableValueError",
    "UnregisteredStoredTypeError",
    "SessionOwnedElsewhere",
    "SessionLeaseLost",
    "WorkflowParked",
    "SessionInputMismatch",
    "TeamError",
    "TeamTimeoutError",
    "TeamMemberCancelled",
    "ExecutorError",
    "ExecutorTimeoutError",
    "GuardrailViolation",
    "ApprovalRequired",
    "KnowledgeError",
    "DocumentLoadError",
)


class GeckoError(Exception):
    """Base class of every error raised by Gecko."""


class ConfigurationError(GeckoError):
    """A component was configured with invalid or missing settings."""


# --- plugins -----------------------------------------------------------------


class PluginError(GeckoError):
    """A plugin could not be found, loaded or registered."""


class PluginNotFoundError(PluginError, LookupError):
    """No installed plugin provides the requested name."""


class PluginLoadError(PluginError):
    """An installed plugin failed to import or did not match its declaration."""


class DuplicatePluginError(PluginError):
    """Two distributions claim the same plugin name."""


# --- storage -----------------------------------------------------------------


class StorageError(GeckoError):
    """A storage backend failed."""


class InvalidStorageURLError(StorageError, ValueError):
    """A storage URL is malformed or names no installed backend."""


class InvalidKeyError(StorageError, ValueError):
    """A storage key is empty, too long, or contains forbidden characters."""


class InvalidValueError(StorageError, TypeError):
    """A value is not JSON-compatible data."""


class StorageClosedError(StorageError):
    """The storage was used after `close()`."""


class StorageUnavailableError(StorageError):
    """The backend could not be reached after bounded retries."""


class VersionConflictError(StorageError):
    """A compare-and-set found a different version than expected."""


class FencingError(StorageError):
    """A write carried a fencing token older than the current lease grant."""


class VectorStoreError(StorageError):
    """A vector store operation failed."""


class DimensionMismatchError(VectorStoreError, ValueError):
    """A vector's length differs from its collection's dimension; `expected` and `actual` hold both."""

    def __init__(self, message: str, *, expected: int, actual: int) -> None:
        super().__init__(message)
        self.expected = expected
        self.actual = actual


class InvalidFilterError(VectorStoreError, ValueError):
    """A metadata filter is not valid in the portable filter language."""


# --- models ------------------------------------------------------------------


class ModelError(GeckoError):
    """A model provider call failed."""


class ModelAuthenticationError(ModelError):
    """The provider rejected the credentials."""


class ModelRateLimitError(ModelError):
    """The provider is rate limiting; `retry_after` holds its hint in seconds, if any."""

    def __init__(self, message: str, *, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class ModelTimeoutError(ModelError, TimeoutError):
    """The provider did not answer in time."""


class ContextLengthError(ModelError):
    """The request does not fit the model's context window."""


class ModelBadRequestError(ModelError):
    """The provider rejected the request as malformed."""


class ModelServerError(ModelError):
    """The provider failed on its side (5xx)."""


class ModelConnectionError(ModelError):
    """The provider could not be reached (connection refused or reset, DNS failure); check `api_base`."""


class ModelOutputError(ModelError):
    """The model's reply is malformed (bad tool-call JSON, truncated output, ...)."""


class UnsupportedRequestError(ModelBadRequestError):
    """The endpoint rejected one feature of the request's shape; `feature` names it (e.g. "json_schema").

    Callers that have another way to ask (a structured-output strategy, say) fall back to it.
    """

    def __init__(self, message: str, *, feature: str) -> None:
        super().__init__(message)
        self.feature = feature


class UsageLimitExceeded(GeckoError):
    """A run would exceed its request or token budget."""


# --- tools -------------------------------------------------------------------


class ToolError(GeckoError):
    """A tool call could not be carried out."""


class UnknownToolError(ToolError):
    """The model asked for a tool that is not registered."""


class ToolArgumentsError(ToolError):
    """A tool call's arguments are not valid for the tool's schema."""


class ToolExecutionError(ToolError):
    """The tool itself raised."""


class ToolServerError(ToolError):
    """A tool server (an MCP server) cannot be reached, died, or answered outside its protocol."""


class ToolTimeoutError(ToolError, TimeoutError):
    """The tool did not finish within its timeout."""


# --- agents ------------------------------------------------------------------


class AgentError(GeckoError):
    """An agent run could not complete."""


class MaxTurnsExceeded(AgentError):
    """The ReAct loop reached `max_turns` without a final answer."""


class ToolLoopDetected(AgentError):
    """The model repeated the same tool call with the same arguments too often."""


class StructuredOutputError(AgentError):
    """No strategy produced output valid for the requested type within the re-ask budget."""


class StructuredOutputInvalid(StructuredOutputError):
    """A reply did not parse into the output type; `errors` is the concise text a re-ask sends back.

    `strategy` names the structured-output strategy; `tool_call_id` is the output tool call to
    answer when the strategy is "tool".
    """

    def __init__(
        self, message: str, *, errors: str, strategy: str | None = None, tool_call_id: str | None = None
    ) -> None:
        super().__init__(message)
        self.errors = errors
        self.strategy = strategy
        self.tool_call_id = tool_call_id


class ApprovalError(AgentError):
    """`resume` does not match the pending tool approvals of the session (or none are pending)."""


class SummarizationError(AgentError):
    """A memory could not summarize old turns; the memory is unchanged, so the next call retries."""


class PromptError(GeckoError):
    """A prompt template is invalid or was rendered with wrong variables."""


# --- workflows and teams -----------------------------------------------------


class WorkflowError(GeckoError):
    """A workflow run failed."""


class WorkflowDefinitionError(WorkflowError):
    """The workflow graph is invalid (unknown node, unreachable node, forbidden cycle, ...)."""


class WorkflowStateConflict(WorkflowError):
    """Two concurrent nodes wrote the same state key, which declares no merge rule."""


class WorkflowMaxStepsExceeded(WorkflowError):
    """A cyclic workflow ran more than `max_steps` node executions."""


class WorkflowTimeoutError(WorkflowError, TimeoutError):
    """A workflow or node exceeded its timeout."""


class CheckpointError(WorkflowError):
    """A checkpoint could not be written or read."""


class CorruptCheckpointError(CheckpointError):
    """A stored checkpoint is not valid; Gecko never restarts silently over it."""


class UnstorableValueError(CheckpointError, TypeError):
    """A value a checkpoint would store is not JSON data that reads back unchanged (tuple, set, model, NaN, ...)."""


class UnregisteredStoredTypeError(CheckpointError):
    """A checkpoint holds a user model whose class is not registered in this process (`register_stored_type`)."""


class SessionOwnedElsewhere(WorkflowError):
    """Another worker holds the lease of this session."""


class SessionLeaseLost(SessionOwnedElsewhere):
    """This worker lost the session's lease mid-run (paused past its TTL); nothing after the loss was committed."""


class WorkflowParked(WorkflowError):
    """A session was started `max_attempts` times in a row without finishing; call `Workflow.unpark` to retry it."""


class SessionInputMismatch(WorkflowError):
    """`execute` named an unfinished session with another input than it started with; resume it or use a new id."""


class TeamError(GeckoError):
    """A team run could not be carried out."""


class TeamTimeoutError(TeamError, TimeoutError):
    """A team member did not finish within the team's timeout; raise `timeout` or speed the member up."""


class TeamMemberCancelled(TeamError):
    """A RACE member was cancelled (or its result dropped) because another member won."""


class ExecutorError(GeckoError):
    """A remote executor (a Dask cluster, say) could not run a job, or its result could not be read."""


class ExecutorTimeoutError(ExecutorError, TimeoutError):
    """A job sent to an executor did not finish in time (every worker gone, say)."""


class GuardrailViolation(GeckoError):
    """A guardrail blocked an input or an output."""


class ApprovalRequired(GuardrailViolation):
    """A guardrail holds a tool call for the user's approval instead of refusing it.

    Raised from `gecko_tool_admit`: the run pauses with the call pending, as for a tool declared
    with `requires_approval=True`, and the message becomes the pending call's `reason`.
    """


class KnowledgeError(GeckoError):
    """Ingestion or retrieval over a knowledge base could not be carried out."""


class DocumentLoadError(KnowledgeError, ValueError):
    """A document could not be read: missing, of an unsupported format, or malformed; the message names it."""
