"""A scriptable participant for orchestrator tests, served over real HTTP.

It behaves like a correct participant (one effect per idempotency key, the first
answer replayed, tombstones), and each step's answers can be scripted: a list
of statuses consumed one per *new* request, e.g. ``[503, 503, 200]``. It keeps a
ledger of what it applied so tests can check "exactly once" from the
participant's side, not from the orchestrator's.

Routes: ``POST /do/{step}`` (action), ``POST /undo/{step}`` (compensation).
"""

from __future__ import annotations

import asyncio
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from typing import Any

import httpx
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse


@dataclass
class ScriptedParticipant:
    #: step -> statuses to answer, one per request that is not a replay.
    script: dict[str, list[int]] = field(default_factory=dict)
    #: step -> status answered once the script is used up (default 200).
    steady: dict[str, int] = field(default_factory=dict)
    #: step -> seconds to wait before answering.
    delay: dict[str, float] = field(default_factory=dict)
    answers: dict[str, tuple[int, Any]] = field(default_factory=dict)
    applied: Counter[str] = field(default_factory=Counter)
    compensated: Counter[str] = field(default_factory=Counter)
    tombstones: set[str] = field(default_factory=set)
    requests: list[dict[str, Any]] = field(default_factory=list)
    order: list[str] = field(default_factory=list)
    keys_seen: dict[str, set[str]] = field(default_factory=lambda: defaultdict(set))
    #: step -> (seconds, "succeeded"|"rejected"): answer 202, complete by callback later;
    #: step -> None: answer 202 and never call back.
    callbacks: dict[str, tuple[float, str] | None] = field(default_factory=dict)
    #: step -> (callback URL, token) as received.
    callback_requests: dict[str, tuple[str, str]] = field(default_factory=dict)
    callback_answers: list[int] = field(default_factory=list)
    _tasks: set[asyncio.Task[None]] = field(default_factory=set)
    _locks: dict[str, asyncio.Lock] = field(default_factory=lambda: defaultdict(asyncio.Lock))

    def next_status(self, step: str) -> int:
        queue = self.script.get(step)
        if queue:
            return queue.pop(0)
        return self.steady.get(step, 200)

    async def _call_back(self, url: str, token: str, delay: float, outcome: str) -> None:
        await asyncio.sleep(delay)
        if outcome == "succeeded":  # recorded before sending: the saga may go on at once
            self.order.append("completed:" + url.rsplit("/steps/", 1)[1].split("/")[0])
        async with httpx.AsyncClient() as client:
            response = await client.post(
                url,
                json={"outcome": outcome, "result": {"completed": True}},
                headers={"X-Saga-Callback-Token": token},
            )
        self.callback_answers.append(response.status_code)

    def app(self) -> FastAPI:
        app = FastAPI()

        @app.get("/healthz")
        async def healthz() -> dict[str, str]:
            return {"status": "ok"}

        @app.post("/do/{step}")
        async def do(step: str, request: Request) -> JSONResponse:
            return await self._handle(step, "action", request)

        @app.post("/undo/{step}")
        async def undo(step: str, request: Request) -> JSONResponse:
            return await self._handle(step, "compensation", request)

        return app

    async def _handle(self, step: str, phase: str, request: Request) -> JSONResponse:
        key = request.headers["Idempotency-Key"]
        body = await request.json()
        self.requests.append(
            {
                "key": key,
                "step": step,
                "phase": phase,
                "body": body,
                "attempt": request.headers.get("X-Saga-Attempt"),
                "traceparent": request.headers.get("traceparent"),
                "saga": request.headers.get("X-Saga-Id"),
            }
        )
        if step in self.delay:
            await asyncio.sleep(self.delay[step])
        async with self._locks[key]:
            if key in self.answers:
                status, answer = self.answers[key]
                return JSONResponse(answer, status_code=status)
            if phase == "action" and key in self.tombstones:
                return JSONResponse({"error": {"message": "compensated already"}}, 409)
            status = self.next_status(f"{step}:{phase}" if phase == "compensation" else step)
            if status >= 500 or status in (408, 429):
                return JSONResponse({"error": {"message": "try again"}}, status_code=status)
            if 200 <= status < 300 and phase == "action" and step in self.callbacks:
                self.applied[key] += 1
                self.order.append(f"accepted:{step}")
                url = request.headers["X-Saga-Callback-Url"]
                token = request.headers["X-Saga-Callback-Token"]
                self.callback_requests[step] = (url, token)
                plan = self.callbacks[step]
                if plan is not None:
                    task = asyncio.create_task(self._call_back(url, token, *plan))
                    self._tasks.add(task)
                    task.add_done_callback(self._tasks.discard)
                answer = {"accepted": True}
                self.answers[key] = (202, answer)
                return JSONResponse(answer, status_code=202)
            if 200 <= status < 300:
                if phase == "action":
                    self.applied[key] += 1
                    answer: Any = {"step": step, "id": f"{step}-{len(self.applied)}", "echo": body}
                else:
                    action_key = key.rsplit(":", 1)[0] + ":action"
                    if action_key in self.answers and self.answers[action_key][0] < 300:
                        self.compensated[action_key] += 1
                    else:
                        self.tombstones.add(action_key)
                    answer = {"undone": step}
                self.order.append(f"{phase}:{step}")
            else:
                answer = {"error": {"message": f"{step} says no"}}
            self.answers[key] = (status, answer)
            return JSONResponse(answer, status_code=status)
