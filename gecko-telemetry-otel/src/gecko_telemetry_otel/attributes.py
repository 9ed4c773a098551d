"""Span, metric and attribute names: the OpenTelemetry GenAI semantic conventions and Gecko's own.

Kept here as plain constants (the upstream incubating module marks them deprecated as the
conventions move), so a rename upstream is one edit in this file.
"""

from __future__ import annotations

# --- GenAI semantic conventions -------------------------------------------------------------

GEN_AI_OPERATION_NAME = "gen_ai.operation.name"
GEN_AI_PROVIDER_NAME = "gen_ai.provider.name"
GEN_AI_AGENT_NAME = "gen_ai.agent.name"
GEN_AI_CONVERSATION_ID = "gen_ai.conversation.id"
GEN_AI_REQUEST_MODEL = "gen_ai.request.model"
GEN_AI_RESPONSE_MODEL = "gen_ai.response.model"
GEN_AI_RESPONSE_FINISH_REASONS = "gen_ai.response.finish_reasons"
GEN_AI_USAGE_INPUT_TOKENS = "gen_ai.usage.input_tokens"
GEN_AI_USAGE_OUTPUT_TOKENS = "gen_ai.usage.output_tokens"
GEN_AI_TOKEN_TYPE = "gen_ai.token.type"
GEN_AI_TOOL_NAME = "gen_ai.tool.name"
GEN_AI_TOOL_CALL_ID = "gen_ai.tool.call.id"
GEN_AI_TOOL_TYPE = "gen_ai.tool.type"
GEN_AI_TOOL_CALL_ARGUMENTS = "gen_ai.tool.call.arguments"
GEN_AI_TOOL_CALL_RESULT = "gen_ai.tool.call.result"
GEN_AI_INPUT_MESSAGES = "gen_ai.input.messages"
GEN_AI_OUTPUT_MESSAGES = "gen_ai.output.messages"
ERROR_TYPE = "error.type"

OPERATION_CHAT = "chat"
OPERATION_INVOKE_AGENT = "invoke_agent"
OPERATION_EXECUTE_TOOL = "execute_tool"
TOKEN_TYPE_INPUT = "input"
TOKEN_TYPE_OUTPUT = "output"

METRIC_TOKEN_USAGE = "gen_ai.client.token.usage"
METRIC_OPERATION_DURATION = "gen_ai.client.operation.duration"
# The bucket boundaries the conventions recommend for the two GenAI histograms.
TOKEN_USAGE_BUCKETS = (1, 4, 16, 64, 256, 1024, 4096, 16384, 65536, 262144, 1048576, 4194304, 16777216, 67108864)
DURATION_BUCKETS = (0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28, 2.56, 5.12, 10.24, 20.48, 40.96, 81.92)

# The switch the GenAI instrumentations share for recording message and tool content.
CAPTURE_CONTENT_VARIABLE = "OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT"
# Gecko's own: the most characters of captured content kept in one span attribute.
MAX_CONTENT_LENGTH_VARIABLE = "GECKO_OTEL_MAX_CONTENT_LENGTH"
DEFAULT_MAX_CONTENT_LENGTH = 8192

# --- Gecko's own (no convention covers workflows and teams) ----------------------------------

GECKO_OPERATION_STATUS = "gecko.operation.status"
GECKO_OPERATION_KIND = "gecko.operation.kind"
GECKO_AGENT_RUN_ID = "gecko.agent.run_id"
GECKO_WORKFLOW_NAME = "gecko.workflow.name"
GECKO_WORKFLOW_SESSION_ID = "gecko.workflow.session_id"
GECKO_WORKFLOW_RUN_ID = "gecko.workflow.run_id"
GECKO_WORKFLOW_RESUMED = "gecko.workflow.resumed"
GECKO_WORKFLOW_NODE = "gecko.workflow.node"
GECKO_WORKFLOW_INTERRUPTED_NODE = "gecko.workflow.interrupted_node"
GECKO_TEAM_NAME = "gecko.team.name"
GECKO_TEAM_STRATEGY = "gecko.team.strategy"
GECKO_TEAM_MEMBER_INDEX = "gecko.team.member_index"

METRIC_TOOL_CALLS = "gecko.tool.calls"
METRIC_TOOL_FAILURES = "gecko.tool.failures"
METRIC_NODE_DURATION = "gecko.workflow.node.duration"

# Log record attributes, named as OpenTelemetry's logging instrumentation names them.
LOG_TRACE_ID = "otelTraceID"
LOG_SPAN_ID = "otelSpanID"
LOG_TRACE_SAMPLED = "otelTraceSampled"
