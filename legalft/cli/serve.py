"""`legalft serve ...`, `legalft chat` and `legalft api`: run a model server, ask it, put the legal API in front."""

from __future__ import annotations

import argparse
import json
import shlex
import sys

from legalft.cli import UsageError
from legalft.errors import ServiceError


def register(subparsers) -> None:
    serve = subparsers.add_parser("serve", help="local model servers: start, stop, list")
    commands = serve.add_subparsers(dest="serve_command", metavar="COMMAND")
    serve.set_defaults(handler=lambda args: (serve.print_help(), 2)[1])

    start = commands.add_parser(
        "start", help="start an OpenAI-compatible server for a model (detached; it keeps running)",
        description="TARGET is `smoke` (the built-in test model), a job id, a run folder (its merged/ model, "
                    "else its adapter/), a model folder or an adapter folder.")
    start.add_argument("target")
    start.add_argument("--kind", choices=("local", "vllm"), default="local",
                       help="local: transformers serve (CPU or GPU); vllm: vLLM (GPU, requirements-gpu.lock)")
    start.add_argument("--port", type=int, help="default: a free port")
    start.add_argument("--host", default="127.0.0.1", help="listen address (default: this machine only)")
    start.add_argument("--name", help="endpoint name for the app and `legalft chat`")
    start.add_argument("--device", default="auto", help="local: auto, cpu or cuda:0")
    start.add_argument("--dtype", help="bfloat16 for vLLM, auto (as saved) for a local server")
    start.add_argument("--served-model-name", help="vLLM: the model name requests use (default legal-lora)")
    start.add_argument("--max-model-len", type=int, default=4096, help="vLLM: prompt plus answer, in tokens")
    start.add_argument("--gpu-memory-utilization", type=float, default=0.90, help="vLLM: share of GPU memory")
    start.add_argument("--chat-template", help="vLLM: a chat template file (default: the model's own)")
    start.add_argument("--vllm", dest="executable", help="vLLM: the vllm executable (default: .venv-gpu/bin/vllm)")
    start.add_argument("--server-arg", dest="extra_args", action="append", default=[], metavar="FLAG",
                       help="one more flag for the server, e.g. --server-arg=--enforce-eager (repeatable)")
    start.add_argument("--timeout", type=float, default=600.0, metavar="SECONDS", help="how long to wait for it")
    start.add_argument("--no-wait", action="store_true", help="return once the process started")
    start.add_argument("--print-command", action="store_true", help="print the server's command line; start nothing")
    start.set_defaults(handler=run_start)

    stop = commands.add_parser("stop", help="stop a server legalft started")
    stop.add_argument("endpoint", help="endpoint id or name (see `legalft serve list`)")
    stop.set_defaults(handler=run_stop)

    listing = commands.add_parser("list", help="endpoints you can chat with, and whether they answer")
    listing.add_argument("--json", action="store_true")
    listing.add_argument("--check", action="store_true", help="also ask each endpoint over HTTP")
    listing.set_defaults(handler=run_list)

    chat = subparsers.add_parser("chat", help="ask an endpoint one question (streams the answer)")
    chat.add_argument("endpoint", help="endpoint id, name or model (see `legalft serve list`)")
    chat.add_argument("question")
    chat.add_argument("--system-prompt", help="default: the UK-legislation assistant prompt; '' for none")
    chat.add_argument("--max-tokens", type=int, default=None, help="1-4096 (default 1024)")
    chat.add_argument("--temperature", type=float, default=None, help="0-2 (default 0.3)")
    chat.add_argument("--no-stream", action="store_true", help="print the answer only when complete")
    chat.add_argument("--raw", action="store_true", help="keep an echoed question or system prompt")
    chat.add_argument("--json", action="store_true", help="print {answer, model, usage, seconds} as JSON")
    chat.set_defaults(handler=run_chat)

    api = subparsers.add_parser(
        "api", help="serve the legal HTTP API over an endpoint",
        description="Needs LEGALFT_API_TOKEN (clients send 'Authorization: Bearer <token>'); "
                    "LEGALFT_API_CORS_ORIGINS lists browser origins allowed to call it (none by default).")
    api.add_argument("--endpoint", required=True, help="endpoint id, name or model")
    api.add_argument("--host", default="127.0.0.1")
    api.add_argument("--port", type=int, default=8000)
    api.add_argument("--no-auth", action="store_true", help="no token (only on 127.0.0.1)")
    api.add_argument("--docs", action="store_true", help="serve /v1/openapi.json and /v1/docs (behind the token)")
    api.add_argument("--rate-limit", metavar="RATE",
                     help="per-token limit, e.g. 60/minute (default: $LEGALFT_API_RATE_LIMIT, else none)")
    api.add_argument("--max-body-bytes", type=int, default=None, help="largest request body (default 1 MiB)")
    api.add_argument("--log-level", default="info")
    api.set_defaults(handler=run_api)


def _fail(exc: Exception) -> int:
    print(f"legalft: error: {exc}", file=sys.stderr)
    return 1


def _config(args: argparse.Namespace):
    from legalft.serve import ServeConfig, ServeError

    try:
        return ServeConfig(kind=args.kind, host=args.host, port=args.port, name=args.name,
                           served_model_name=args.served_model_name, device=args.device, dtype=args.dtype,
                           max_model_len=args.max_model_len, gpu_memory_utilization=args.gpu_memory_utilization,
                           chat_template=args.chat_template, executable=args.executable,
                           extra_args=tuple(args.extra_args))
    except ServeError as exc:
        raise UsageError(str(exc)) from None


def run_start(args: argparse.Namespace) -> int:
    from legalft import serve

    config = _config(args)
    try:
        source = serve.resolve_target(args.target)
        if args.print_command:
            port = config.port or 8100  # the reference's vLLM port
            if config.kind == "vllm":
                try:
                    executable = serve.find_vllm(config)
                except serve.ServeError:  # printing the command needs no vLLM here
                    executable = "vllm"
                command = serve.vllm_command(source, config, port, executable)
            else:
                command = serve.transformers_command(source, config, port)
            print(shlex.join(command))
            return 0
        endpoint = serve.start_server(source, config, wait=not args.no_wait, timeout=args.timeout)
    except serve.ServeError as exc:
        return _fail(exc)
    print(f"endpoint {endpoint.id}: {endpoint.name}  {endpoint.status}  {endpoint.base_url}  model {endpoint.model}")
    print(f"log: {endpoint.details.get('log')}")
    if endpoint.status == "failed":
        print(f"legalft: error: the server did not come up: {endpoint.details.get('error')}", file=sys.stderr)
        return 1
    if "base_model" in endpoint.details:
        print(f"the base model is served too, as {serve.BASE_SERVED_NAME}, for comparison")
    print(f'chat with it: legalft chat {endpoint.id} "your question"   stop it: legalft serve stop {endpoint.id}')
    return 0


def run_stop(args: argparse.Namespace) -> int:
    from legalft.errors import ServiceError
    from legalft.serve import ServeError, stop_server

    try:
        endpoint = stop_server(args.endpoint)
    except (ServeError, ServiceError) as exc:
        return _fail(exc)
    print(f"endpoint {endpoint.id}: {endpoint.name} {endpoint.status}")
    return 0


def run_list(args: argparse.Namespace) -> int:
    from legalft.endpoints import list_endpoints
    from legalft.serve import list_servers, refresh_status

    list_servers(refresh=True)  # record servers whose process has exited
    endpoints = list_endpoints()
    if args.check:
        endpoints = [refresh_status(e)[0] if e.kind in ("local", "vllm") else e for e in endpoints]
    if args.json:
        print(json.dumps([{"id": e.id, "kind": e.kind, "name": e.name, "status": e.status, "base_url": e.base_url,
                           "model": e.model, "pid": e.details.get("pid"), "log": e.details.get("log")}
                          for e in endpoints], indent=1))
        return 0
    if not endpoints:
        print("no endpoints yet: `legalft serve start smoke` starts a local one; `legalft tf deploy` a managed one")
        return 0
    for e in endpoints:
        pid = f"  pid {e.details['pid']}" if e.details.get("pid") else ""
        print(f"{e.id:>4}  {e.kind:<13} {e.status:<11} {e.name}  {e.base_url}  model {e.model}{pid}")
    return 0


def run_chat(args: argparse.Namespace) -> int:
    from legalft import chat

    try:
        endpoint = chat.resolve_endpoint(args.endpoint)
        system = chat.DEFAULT_SYSTEM_PROMPT if args.system_prompt is None else args.system_prompt
        messages = chat.build_messages(args.question, system)
        settings = chat.ChatSettings(
            max_tokens=args.max_tokens if args.max_tokens is not None else chat.DEFAULT_MAX_TOKENS,
            temperature=args.temperature if args.temperature is not None else chat.DEFAULT_TEMPERATURE)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    except ServiceError as exc:
        return _fail(exc)
    try:
        if args.no_stream or args.json:
            reply = chat.chat(endpoint, messages, settings=settings, clean=not args.raw)
        else:
            with chat.stream_chat(endpoint, messages, settings=settings, clean=not args.raw) as pieces:
                for piece in pieces:
                    print(piece, end="", flush=True)
            print()
            reply = pieces.reply
    except ServiceError as exc:
        return _fail(exc)
    if args.json:
        print(json.dumps({"answer": reply.text, "model": reply.model, "usage": reply.usage,
                          "finish_reason": reply.finish_reason, "seconds": round(reply.seconds, 3)}))
    elif args.no_stream:
        print(reply.text)
    if reply and reply.usage and not args.json:
        print(f"[{reply.usage.get('prompt_tokens', '?')} tokens in, {reply.usage.get('completion_tokens', '?')} out, "
              f"{reply.seconds:.1f} s]", file=sys.stderr)
    return 0


def run_api(args: argparse.Namespace) -> int:
    from legalft.api import ApiConfigError
    from legalft.api import run_api as serve_api
    from legalft.errors import ServiceError

    try:
        serve_api(args.endpoint, host=args.host, port=args.port, no_auth=args.no_auth, log_level=args.log_level,
                  docs=args.docs, rate_limit=args.rate_limit, max_body_bytes=args.max_body_bytes)
    except ApiConfigError as exc:
        raise UsageError(str(exc)) from None
    except ServiceError as exc:
        return _fail(exc)
    return 0
