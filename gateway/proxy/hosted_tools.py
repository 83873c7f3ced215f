"""Provider-hosted tools (Codex's `web_search`, Anthropic's `web_search_20250305` …) on a
translated request, by the route's policy (routing.models.HostedTools):

    map     the target's own equivalent where one exists (web search: Anthropic's server
            tool, the Responses API's `web_search`, OpenRouter's web plugin), else drop
    drop    leave it out of the upstream request
    refuse  a clear 400

A hosted tool is usually only *offered* (every Codex request offers web_search), so the model
may never call it: dropping it is then harmless, and the response header
`x-gateway-dropped-tools` and UsageRecord.dropped_tools say it happened. A tool_choice that
*forces* a hosted tool the target cannot run is always refused. Runs only when the request
holds hosted tools: the common request pays one generator scan.
"""

from __future__ import annotations

from providers.codecs import canonical as c
from providers.codecs.errors import UnsupportedFeature

WEB_SEARCH = "web_search"
# Responses API hosted web search types, and Anthropic's dated server tool types.
_RESPONSES_WEB_SEARCH = frozenset({"web_search", "web_search_preview", "web_search_preview_2025_03_11",
                                   "web_search_2025_08_26"})
ANTHROPIC_WEB_SEARCH = {"type": "web_search_20250305", "name": WEB_SEARCH}
_ANTHROPIC_SERVER_RUN = ("web_search_", "web_fetch_", "code_execution_")


def hosted_kind(tool: c.Tool) -> str | None:
    """The hosted tool's kind (`web_search`, `file_search`, …), or None for a function tool."""
    extra = tool.extra
    if not extra:
        return None
    hosted = extra.get("hosted")
    if isinstance(hosted, dict):  # from a Responses client: web_search, file_search, custom (apply_patch) …
        kind = hosted.get("type")
        if kind in _RESPONSES_WEB_SEARCH:
            return WEB_SEARCH
        name = hosted.get("name")
        return name if isinstance(name, str) and name else str(kind or tool.name)
    kind = extra.get("type")  # from an Anthropic client: server-run tools carry a dated `type`
    if isinstance(kind, str) and kind.startswith(_ANTHROPIC_SERVER_RUN):
        return WEB_SEARCH if kind.startswith("web_search_") else tool.name
    # Anthropic-defined tools the *client* runs (bash_2025…, text_editor_…, computer_…) stay
    # ordinary tools: the model calls them and the client answers, on any upstream.
    return None


def _native(kind: str, upstream_format: str, provider_type: str) -> dict | None:
    """The upstream's own tool dict for a hosted tool kind, None when it has none.
    OpenRouter's web search is a request option, not a tool: see apply_body_options."""
    if kind != WEB_SEARCH:
        return None
    if upstream_format == "anthropic_messages":
        return dict(ANTHROPIC_WEB_SEARCH)
    if upstream_format == "openai_responses":
        return {"type": "web_search"}
    # Bedrock Converse has no server-side web search (Anthropic's server tools are not
    # offered there); Ollama and plain chat servers have none either.
    return None


def _forced(request: c.Request) -> str | None:
    """The hosted tool tool_choice forces, if any."""
    choice = request.tool_choice
    if choice is None:
        return None
    raw = request.extra.get("_tool_choice") if request.source_format == "openai_responses" else None
    if isinstance(raw, dict) and raw.get("type") not in (None, "function", "allowed_tools"):
        return WEB_SEARCH if raw.get("type") in _RESPONSES_WEB_SEARCH else str(raw.get("type"))
    if choice.type == "tool" and choice.name:
        for tool in request.tools or ():
            if tool.name == choice.name:
                return hosted_kind(tool)
    return None


def apply_policy(request: c.Request, policy: str, upstream_format: str, provider_type: str,
                 provider_name: str) -> tuple[list[c.Tool] | None, c.ToolChoice | None, list[str], list[str]]:
    """(tools for the upstream, tool_choice, mapped kinds, dropped kinds). Raises UnsupportedFeature
    when the policy is refuse or tool_choice forces a hosted tool the target cannot run."""
    tools = request.tools or []
    hosted = [(t, hosted_kind(t)) for t in tools]
    if not any(kind for _, kind in hosted):
        return request.tools, request.tool_choice, [], []
    names = ", ".join(kind for _, kind in hosted if kind)
    if policy == "refuse":
        raise UnsupportedFeature(f"hosted tools ({names}) are not available on provider `{provider_name}` "
                                 f"({provider_type}) and this route refuses them (hosted_tools: refuse)")
    openrouter = provider_type == "openrouter"
    out: list[c.Tool] = []
    mapped: list[str] = []
    dropped: list[str] = []
    native_by_kind: dict[str, str] = {}
    for tool, kind in hosted:
        if kind is None:
            out.append(tool)
            continue
        native = _native(kind, upstream_format, provider_type) if policy == "map" else None
        if native is not None:
            out.append(c.Tool(name=native.get("name", kind), extra={"server_tool": native}))
            native_by_kind[kind] = native.get("name", kind)
            mapped.append(kind)
        elif policy == "map" and openrouter and kind == WEB_SEARCH:
            mapped.append(kind)  # becomes the `web` plugin (apply_body_options)
        elif kind not in dropped:
            dropped.append(kind)
    choice = request.tool_choice
    forced = _forced(request)
    if forced is not None:
        if forced in native_by_kind:
            choice = c.ToolChoice("tool", name=native_by_kind[forced],
                                  disable_parallel_tool_use=choice.disable_parallel_tool_use)
        else:
            raise UnsupportedFeature(f"tool_choice forces the hosted tool {forced}, which provider "
                                     f"`{provider_name}` ({provider_type}) cannot run")
    if not out:
        return None, None, mapped, dropped  # nothing left to offer: send no tools at all
    return out, choice, mapped, dropped


def apply_body_options(body: dict, mapped: list[str], provider_type: str) -> None:
    """Hosted tools that are request options on the upstream rather than tools."""
    if provider_type == "openrouter" and WEB_SEARCH in mapped:
        plugins = body.setdefault("plugins", [])
        has_web = any(isinstance(p, dict) and p.get("id") == "web" for p in plugins or ())
        if isinstance(plugins, list) and not has_web:
            plugins.append({"id": "web"})
