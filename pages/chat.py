"""Chat: ask a served model about UK legislation, and compare it with the base model side by side.

Any endpoint works the same way (a local server, vLLM, a Token Factory deployment): the page calls
``legalft.chat``. The Monitor page's "Serve and chat" lands here with ``chat_model_dir`` set.
"""

from pathlib import Path

import streamlit as st

from legalft import chat, serve
from legalft.endpoints import list_endpoints
from legalft.errors import LegalftError
from legalft.jobs import list_jobs

NOT_USABLE = ("stopped", "failed", "error", "validating", "deleted")

st.title("Chat")
st.caption("Ask a fine-tuned model about UK legislation. Compare mode sends the same question to a second model "
           "(the base model) and shows both answers side by side.")


# --- start a local server -------------------------------------------------------------------------


def _local_sources() -> dict[str, str]:
    """Label -> serve target: the smoke model, then every succeeded local run with a model to serve."""
    sources = {"Smoke model (built in; random weights, for trying the app)": "smoke"}
    for job in list_jobs(path="local"):
        if job.status != "succeeded" or not job.run_dir:
            continue
        merged = job.output.get("merged") or str(Path(job.run_dir) / "merged")
        if Path(merged, "config.json").is_file():
            sources[f"{job.name or job.id} (merged)"] = merged
        elif Path(job.run_dir, "adapter").is_dir():
            sources[f"{job.name or job.id} (adapter, unmerged)"] = str(Path(job.run_dir, "adapter"))
    return sources


def _start(target: str, kind: str) -> None:
    with st.spinner("Starting the model server; loading the model can take a minute …"):
        try:
            endpoint = serve.start_server(target, kind=kind)
        except serve.ServeError as exc:
            st.session_state["chat_notice"] = ("error", str(exc))
            return
    if endpoint.status == "active":
        st.session_state["chat_endpoint"] = endpoint.id
        st.session_state["chat_notice"] = ("success", f"{endpoint.name} is serving at {endpoint.base_url}")
        st.session_state.pop("chat_model_dir", None)
    else:
        st.session_state["chat_notice"] = ("error", f"the server did not come up: {endpoint.details.get('error')}")


pending = st.session_state.get("chat_model_dir")
servers = serve.list_servers(refresh=True)  # records servers whose process has exited
endpoints = [e for e in list_endpoints() if e.status not in NOT_USABLE]

with st.expander("Start a local model server", expanded=bool(pending) or not endpoints):
    sources = _local_sources()
    if pending:
        sources = {f"From Monitor: {pending}": str(pending), **sources}
    left, right = st.columns([3, 1])
    choice = left.selectbox("Model", list(sources), key="chat_source")
    kind = right.radio("Server", ["local", "vllm"], key="chat_server_kind", horizontal=True,
                       help="local: transformers serve (CPU or GPU). vllm: vLLM on a GPU, from the environment "
                            "in requirements-gpu.lock; an adapter is served unmerged, with its base model beside it.")
    folder = st.text_input("…or a model folder on this machine", key="chat_folder",
                           placeholder="/path/to/merged-model")
    if st.button("Start server", key="chat_start", type="primary"):
        _start(folder.strip() or sources[choice], kind)
        st.rerun()
    running = [s for s in servers if s.status in ("active", "starting")]
    if running:
        st.caption("Running: " + "; ".join(f"{s.name} on port {s.details.get('port')}" for s in running))

notice = st.session_state.pop("chat_notice", None)
if notice:
    getattr(st, notice[0])(notice[1])
    endpoints = [e for e in list_endpoints() if e.status not in NOT_USABLE]

if not endpoints:
    st.info("No model is being served. Start a local server above, or deploy a Token Factory job from the "
            "Monitor page.")
    st.stop()


# --- endpoints and settings -----------------------------------------------------------------------

by_id = {e.id: e for e in endpoints}
ids = list(by_id)


def _label(endpoint_id: int) -> str:
    e = by_id[endpoint_id]
    return f"{e.name} · {e.kind} · {e.status}"


if st.session_state.get("chat_endpoint") not in by_id:
    # A base model served beside an adapter is for comparing, not the first choice.
    st.session_state["chat_endpoint"] = next((i for i in ids if by_id[i].details.get("role") != "base"), ids[0])
top = st.columns(2)
endpoint = by_id[top[0].selectbox("Model", ids, format_func=_label, key="chat_endpoint")]
compare = top[0].toggle("Compare with base model", key="chat_compare",
                        help="Send each question to a second model too, and show both answers side by side.")
base = None
if compare:
    others = [i for i in ids if i != endpoint.id]
    if not others:
        top[1].warning("Compare needs a second endpoint: start a server for the base model too.")
    else:
        # vLLM serving an adapter also serves its base model: that is the natural comparison.
        sibling = next((i for i in others if by_id[i].details.get("adapter_endpoint_id") == endpoint.id), others[0])
        if st.session_state.get("chat_base_endpoint") not in others:
            st.session_state["chat_base_endpoint"] = sibling
        base = by_id[top[1].selectbox("Base model", others, format_func=_label, key="chat_base_endpoint")]

with st.expander("Settings"):
    system_prompt = st.text_area("System prompt", value=chat.DEFAULT_SYSTEM_PROMPT, key="chat_system_prompt",
                                 height=100)
    s1, s2, s3 = st.columns(3)
    temperature = s1.slider("Temperature", 0.0, 2.0, chat.DEFAULT_TEMPERATURE, 0.05, key="chat_temperature")
    max_tokens = s2.number_input("Max tokens", 1, chat.MAX_TOKENS_LIMIT, chat.DEFAULT_MAX_TOKENS, 64,
                                 key="chat_max_tokens")
    clean = s3.toggle("Strip echoed question", value=True, key="chat_clean",
                      help="Remove a repeated question or system prompt from the start of answers.")
    if endpoint.kind in serve.SERVER_KINDS and endpoint.details.get("pid"):
        if st.button(f"Stop the server for {endpoint.name}", key="chat_stop"):
            serve.stop_server(endpoint)
            st.session_state.pop("chat_endpoint", None)
            st.rerun()

settings = chat.ChatSettings(max_tokens=int(max_tokens), temperature=float(temperature))
history: list[dict] = st.session_state.setdefault("chat_history", [])
if history and st.button("Clear conversation", key="chat_clear"):
    history.clear()
    st.rerun()


# --- the conversation -----------------------------------------------------------------------------


def _earlier_turns(endpoint_id: int) -> list[dict[str, str]]:
    """This endpoint's own side of the conversation so far (each model keeps its own thread)."""
    turns = []
    for turn in history:
        answer = next((a for a in turn["answers"] if a["endpoint_id"] == endpoint_id and not a.get("error")), None)
        if answer:
            turns += [{"role": "user", "content": turn["question"]}, {"role": "assistant", "content": answer["text"]}]
    return turns


def _caption(answer: dict) -> str:
    usage = answer.get("usage") or {}
    tokens = f"{usage['completion_tokens']} tokens · " if "completion_tokens" in usage else ""
    return f"{answer['name']} · {tokens}{answer.get('seconds', 0):.1f} s"


def _show(answer: dict) -> None:
    if answer.get("error"):
        st.error(answer["error"])
    else:
        st.markdown(answer["text"] or "_(empty answer)_")
    st.caption(_caption(answer))


def _ask(target, question: str) -> dict:
    """Stream one endpoint's answer into the current container; returns the record kept in history."""
    record = {"endpoint_id": target.id, "name": target.name}
    try:
        messages = chat.build_messages(question, system_prompt, history=_earlier_turns(target.id))
        stream = chat.stream_chat(target, messages, settings=settings, clean=clean)
        text = st.write_stream(stream)
        reply = stream.reply
        record.update(text=reply.text if reply else str(text or ""), usage=reply.usage if reply else {},
                      seconds=reply.seconds if reply else 0.0, model=reply.model if reply else target.model)
        st.caption(_caption(record))
    except (LegalftError, ValueError) as exc:
        record["error"] = str(exc)
        st.error(str(exc))
    return record


for turn in history:
    with st.chat_message("user"):
        st.markdown(turn["question"])
    with st.chat_message("assistant"):
        if len(turn["answers"]) == 1:
            _show(turn["answers"][0])
        else:
            for column, answer in zip(st.columns(len(turn["answers"])), turn["answers"]):
                with column:
                    st.markdown(f"**{answer['name']}**")
                    _show(answer)

question = st.chat_input("Ask about UK legislation, e.g. What does section 1 of the Interpretation Act 1978 say?",
                         key="chat_question")
if question:
    with st.chat_message("user"):
        st.markdown(question)
    targets = [endpoint, base] if base is not None else [endpoint]
    answers = []
    with st.chat_message("assistant"):
        if len(targets) == 1:
            answers.append(_ask(endpoint, question))
        else:
            for column, target in zip(st.columns(len(targets)), targets):
                with column:
                    st.markdown(f"**{target.name}**")
                    answers.append(_ask(target, question))
    history.append({"question": question, "answers": answers})
