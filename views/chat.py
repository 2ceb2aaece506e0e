"""Chat: ask a served model about UK legislation, and compare it with the base model side by side.

Any endpoint works the same way (a local server, vLLM, a Token Factory deployment): the page calls
``legalft.chat``. The Monitor page's "Serve and chat" lands here with ``chat_model_dir`` set. Under
each answer, its citations are checked against the statute index (``legalft.legal``); a grounded
answer is given the provisions retrieved for the question. A turn is kept in ``chat_history`` from
the moment it is asked, so a question sent while an answer streams (or **Stop**) keeps what came.
"""

from pathlib import Path

import streamlit as st

from legalft import chat, serve
from legalft.compare import NOISE_NOTE, base_candidates, is_noise_model
from legalft.endpoints import list_endpoints
from legalft.errors import LegalftError
from legalft.jobs import list_jobs
from legalft.legal.grounding import DEFAULT_K, check_answer, grounded_question, retrieve
from legalft.legal.index import default_index


def _keep(key: str, default=None) -> None:
    """Restore a widget's value when the page is visited again (Streamlit drops widget state on leaving)."""
    if key not in st.session_state and f"_keep_{key}" in st.session_state:
        st.session_state[key] = st.session_state[f"_keep_{key}"]
    elif key not in st.session_state and default is not None:
        st.session_state[key] = default


def _remember(*keys: str) -> None:
    for key in keys:
        if key in st.session_state:
            st.session_state[f"_keep_{key}"] = st.session_state[key]


KEPT = ("chat_endpoint", "chat_compare", "chat_base_endpoint", "chat_system_prompt", "chat_temperature",
        "chat_max_tokens", "chat_clean", "chat_grounded", "chat_k")
for _key in KEPT:
    _keep(_key)

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
            sources[f"Run {serve.run_label(job)} (merged)"] = merged
        elif Path(job.run_dir, "adapter").is_dir():
            sources[f"Run {serve.run_label(job)} (adapter, unmerged)"] = str(Path(job.run_dir, "adapter"))
    return sources


def _start(target: str, kind: str, as_base: bool) -> None:
    with st.spinner("Starting the model server; loading the model can take a minute …"):
        try:
            endpoint = serve.start_server(target, kind=kind)
        except serve.ServeError as exc:
            st.session_state["chat_notice"] = ("error", str(exc))
            return
    if endpoint.status == "active":
        # A server started for the comparison takes the base slot; the model being compared stays put.
        slot = "chat_base_endpoint" if as_base else "chat_endpoint"
        st.session_state[slot] = st.session_state[f"_keep_{slot}"] = endpoint.id
        if as_base:
            st.session_state["chat_compare"] = st.session_state["_keep_chat_compare"] = True
        role = "as the base model" if as_base else ""
        st.session_state["chat_notice"] = ("success", f"{endpoint.name} is serving at {endpoint.base_url} {role}".strip())
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
    comparing = bool(st.session_state.get("chat_compare") and st.session_state.get("chat_endpoint"))
    start_as = st.radio("Start it as", ["the model", "the base model, to compare with"], key="chat_start_role",
                        index=1 if comparing else 0, horizontal=True,
                        help="A base model server joins the comparison without replacing the model you chat with.")
    blocked = serve.vllm_unavailable() if kind == "vllm" else None
    if blocked:
        st.info(blocked, icon=":material/memory:")
    if st.button("Start server", key="chat_start", type="primary", disabled=bool(blocked)):
        _start(folder.strip() or sources[choice], kind, as_base=start_as.startswith("the base"))
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


KIND_LABELS = {"local": "local server", "vllm": "vLLM", "token_factory": "Token Factory"}


def _label(endpoint_id: int) -> str:
    """Name, which run it came from (when the name does not say), where it is served, and its status."""
    e = by_id[endpoint_id]
    run = f" · run {e.job_id}" if e.job_id and e.job_id not in e.name else ""
    return f"{e.name}{run} · {KIND_LABELS.get(e.kind, e.kind)} · {e.status}"


if st.session_state.get("chat_endpoint") not in by_id:
    # A base model served beside an adapter is for comparing, not the first choice.
    st.session_state["chat_endpoint"] = next((i for i in ids if by_id[i].details.get("role") != "base"), ids[0])
top = st.columns(2)
endpoint = by_id[top[0].selectbox("Model", ids, format_func=_label, key="chat_endpoint")]
if is_noise_model(endpoint):
    top[0].warning(NOISE_NOTE, icon="🎲")
compare = top[0].toggle("Compare with base model", key="chat_compare",
                        help="Send each question to a second model too, and show both answers side by side.")
base = None
if compare:
    # The natural comparison first: vLLM's base beside an adapter, or the managed service's own base model.
    candidates = base_candidates(endpoint, endpoints)
    for candidate in candidates:
        by_id.setdefault(candidate.id, candidate)
    others = [c.id for c in candidates]
    if not others:
        top[1].warning("Compare needs a second endpoint: start a server for the base model too (above, "
                       "“Start it as the base model”).")
    else:
        if st.session_state.get("chat_base_endpoint") not in others:
            st.session_state["chat_base_endpoint"] = others[0]
        base = by_id[top[1].selectbox("Base model", others, format_func=_label, key="chat_base_endpoint")]
        if is_noise_model(base):
            top[1].caption(NOISE_NOTE)
grounded = top[0].toggle("Grounded answers", key="chat_grounded",
                         help="Retrieve the provisions most relevant to the question from the statute index and "
                              "give them to the model, with their citations, as context.")

with st.expander("Settings"):
    _keep("chat_system_prompt", chat.DEFAULT_SYSTEM_PROMPT)
    system_prompt = st.text_area("System prompt", key="chat_system_prompt", height=100)
    s1, s2, s3 = st.columns(3)
    _keep("chat_temperature", chat.DEFAULT_TEMPERATURE)
    _keep("chat_max_tokens", chat.DEFAULT_MAX_TOKENS)
    _keep("chat_clean", True)
    _keep("chat_k", DEFAULT_K)
    temperature = s1.slider("Temperature", 0.0, 2.0, step=0.05, key="chat_temperature")
    max_tokens = s2.number_input("Max tokens", 1, chat.MAX_TOKENS_LIMIT, step=64, key="chat_max_tokens")
    clean = s3.toggle("Strip echoed question", key="chat_clean",
                      help="Remove a repeated question or system prompt from the start of answers.")
    k = s1.number_input("Provisions retrieved (grounded)", 1, 10, step=1, key="chat_k")
    if endpoint.kind in serve.SERVER_KINDS and endpoint.details.get("pid"):
        if st.button(f"Stop the server for {endpoint.name}", key="chat_stop"):
            serve.stop_server(endpoint)
            st.session_state.pop("chat_endpoint", None)
            st.rerun()

_remember(*KEPT)
settings = chat.ChatSettings(max_tokens=int(max_tokens), temperature=float(temperature))
history: list[dict] = st.session_state.setdefault("chat_history", [])
# An answer still marked streaming was cut short by Stop or by a new question: keep what came.
for _turn in history:
    for _answer in _turn["answers"]:
        if _answer.pop("streaming", False):
            _answer["stopped"] = True
if history and st.button("Clear conversation", key="chat_clear"):
    history.clear()
    st.rerun()


# --- the conversation -----------------------------------------------------------------------------


def _earlier_turns(endpoint_id: int) -> list[dict[str, str]]:
    """This endpoint's own side of the conversation before the turn being asked (each model keeps its own
    thread); answers cut short or failed are left out."""
    turns = []
    for turn in history[:-1]:
        answer = next((a for a in turn["answers"] if a["endpoint_id"] == endpoint_id and not a.get("error")
                       and not a.get("stopped")), None)
        if answer:
            turns += [{"role": "user", "content": turn["question"]}, {"role": "assistant", "content": answer["text"]}]
    return turns


def _caption(answer: dict) -> str:
    usage = answer.get("usage") or {}
    tokens = f"{usage['completion_tokens']} tokens · " if "completion_tokens" in usage else ""
    grounded = f" · grounded on {len(answer['retrieved'])} provisions" if answer.get("retrieved") else ""
    stopped = " · stopped before the end" if answer.get("stopped") else ""
    return f"{answer['name']} · {tokens}{answer.get('seconds', 0):.1f} s{grounded}{stopped}"


def _chips(report: dict | None, key: str) -> None:
    """The answer's citations as verdict chips; a verified one opens the provision's text and link."""
    if not report:
        return
    st.caption(report["line"])
    if not report["chips"]:
        return
    with st.container(horizontal=True, key=f"chips_{key}"):
        for number, chip in enumerate(report["chips"]):
            if chip["status"] == "verified":
                outside = " (not among the retrieved provisions)" if chip["retrieved"] is False else ""
                with st.popover(f"✓ {chip['label']}", help=f"verified{outside}", key=f"pop_{key}_{number}"):
                    st.markdown(f"**{chip['title']}**" + (f" — {chip['heading']}" if chip["heading"] else ""))
                    text = chip["text"] or ""
                    st.text(text if len(text) <= 4000 else text[:4000] + " …")
                    if chip["url"]:
                        st.markdown(f"[Source on legislation.gov.uk]({chip['url']})")
            elif chip["status"] == "not_found":
                st.badge(f"✗ {chip['label']}: not found", color="red", help=chip["reason"])
            else:
                st.badge(f"? {chip['label']}: cannot be checked", color="gray", help=chip["reason"])


def _show(answer: dict, key: str) -> None:
    if answer.get("error"):
        st.error(answer["error"])
    else:
        st.markdown(answer.get("text") or "_(empty answer)_")
    st.caption(_caption(answer))
    _chips(answer.get("citations"), key)


def _ask(target, question: str, record: dict, grounding) -> None:
    """Stream one endpoint's answer into the current container, updating its record in the history as it comes."""
    record["streaming"] = True
    try:
        content = grounded_question(question, grounding) if grounding is not None else question
        messages = chat.build_messages(content, system_prompt, history=_earlier_turns(target.id))
        with chat.stream_chat(target, messages, settings=settings, clean=clean) as stream:
            def pieces():
                for piece in stream:
                    record["text"] = record.get("text", "") + piece
                    yield piece

            text = st.write_stream(pieces())
        reply = stream.reply
        record.update(text=reply.text if reply else str(text or ""), usage=reply.usage if reply else {},
                      seconds=reply.seconds if reply else 0.0, model=reply.model if reply else target.model)
        record["citations"] = check_answer(record["text"], index, grounding)
        st.caption(_caption(record))
        _chips(record["citations"], f"new_{target.id}")
    except (LegalftError, ValueError) as exc:
        record["error"] = str(exc)
        st.error(str(exc))
    finally:
        record.pop("streaming", None)


with st.spinner("Opening the statute index (built once, on first use) …"):
    index = default_index()

# The conversation scrolls in a box of its own that keeps its newest lines in view, so the answers
# streaming in (two columns side by side in compare mode) are on screen without scrolling the page.
conversation = st.container(height=560, border=True, key="chat_conversation") if history else st.container()
question = st.chat_input("Ask about UK legislation, e.g. What does section 1 of the Interpretation Act 1978 say?",
                         key="chat_question")
if question and not history:
    conversation = st.container(height=560, border=True, key="chat_conversation")

for number, turn in enumerate(history):
    with conversation, st.chat_message("user"):
        st.markdown(turn["question"])
    with conversation, st.chat_message("assistant"):
        if len(turn["answers"]) == 1:
            _show(turn["answers"][0], f"{number}_0")
        else:
            for column, (side, answer) in zip(st.columns(len(turn["answers"])), enumerate(turn["answers"])):
                with column:
                    st.markdown(f"**{answer['name']}**")
                    _show(answer, f"{number}_{side}")

if question:
    with conversation, st.chat_message("user"):
        st.markdown(question)
    targets = [endpoint, base] if base is not None else [endpoint]
    grounding = retrieve(question, index, int(k)) if grounded else None
    # The turn is kept before the first token: a rerun mid-answer (Stop, a new question) loses nothing.
    turn = {"question": question, "grounded": bool(grounded),
            "answers": [{"endpoint_id": t.id, "name": t.name, "text": "",
                         "retrieved": grounding.to_list() if grounding else []} for t in targets]}
    history.append(turn)
    st.button("Stop", key="chat_stop_answer", help="Stop the answer; what came so far is kept.")
    with conversation, st.chat_message("assistant"):
        if grounding is not None:
            with st.expander(f"Provisions given to the model ({len(grounding.provisions)})"):
                for provision in grounding.provisions:
                    st.markdown(f"- [{provision.label}]({provision.url})" if provision.url else f"- {provision.label}")
        if len(targets) == 1:
            _ask(endpoint, question, turn["answers"][0], grounding)
        else:
            for column, target, record in zip(st.columns(len(targets)), targets, turn["answers"]):
                with column:
                    st.markdown(f"**{target.name}**")
                    _ask(target, question, record, grounding)
