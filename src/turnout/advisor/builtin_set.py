"""The built-in workload of ``turnout compare``: short questions, long documents to summarise,
and code tasks (see :mod:`turnout.advisor.workload`). Every name, address and key in here is
made up; two requests carry them on purpose, for the privacy section of the report."""

from __future__ import annotations

from typing import Any

__all__ = ["REQUESTS"]

_SYSTEM = {"role": "system", "content": "You are a helpful assistant. Answer concisely."}


def _chat(text: str, max_tokens: int, *, system: bool = True) -> dict[str, Any]:
    messages = [_SYSTEM] if system else []
    messages.append({"role": "user", "content": text})
    return {"messages": messages, "max_tokens": max_tokens, "temperature": 0}


_POSTMORTEM = """\
Incident review: checkout latency, 14 March.

Summary. Between 09:12 and 10:47 UTC the checkout service answered slowly: the median
response time rose from 180 ms to 2.4 s and about 6% of payment confirmations timed out.
No orders were lost, but 1,940 customers saw an error page and 311 of them retried and were
charged twice; finance refunded the duplicates the same day.

Timeline. At 09:05 a routine deployment raised the connection pool of the inventory client
from 50 to 400 connections per instance, to absorb the traffic expected for the spring sale.
At 09:12 the inventory database reached its limit of 2,000 concurrent connections, because
the forty checkout instances together could now open 16,000. New connections queued in the
database's accept backlog; queries that had taken 4 ms waited up to two seconds for a
connection. The on-call engineer was paged at 09:19 by the latency alert, suspected the
payment provider first because its dashboard showed a small error spike, and spent thirty
minutes with the provider's support before the database graphs made the cause clear. The
pool change was rolled back at 10:31 and latency was normal again by 10:47.

What went well. The latency alert fired within seven minutes. The rollback was one command.
Idempotency keys prevented most duplicate charges.

What went badly. The pool size was reviewed as a configuration change, without anyone
multiplying it by the number of instances. The database's connection count was not on the
checkout dashboard. The payment provider's error spike was a coincidence and cost half an
hour. Idempotency keys were not sent by the older mobile clients, which caused the 311
duplicate charges.

Actions. Add the database connection count, with its limit, to the checkout dashboard. Put
a connection proxy in front of the inventory database so that instance count and pool size
no longer multiply. Require a capacity note for any pool or limit change. Make the mobile
clients send idempotency keys, and refuse payment confirmations without one from June on.
"""

_MEETING = """\
Product meeting notes, team Atlas, week 37.

Attendees: Priya (product), Jonas (backend), Mei (design), Tom (support), Ana (data).

1. Onboarding funnel. Ana presented the numbers for August: 41% of new workspaces invite a
second member within a week, down from 47% in June. The drop is concentrated in workspaces
created from the mobile app, where the invite step moved behind a menu in the July
redesign. Mei proposed restoring the invite prompt on the first screen after sign-up, with
a skip link. Jonas noted that the invite endpoint has no rate limit and that a prompt on the
first screen may attract abuse; he will add one before the change ships. Decision: restore
the prompt in the next mobile release, behind a feature flag, and compare two weeks of data.

2. Support load. Tom reported 1,280 tickets in August, 22% about billing. Most billing
tickets ask why a workspace was charged for members who never logged in. The pricing page
says seats are billed when invited, not when active, but the invoice does not. Priya will
ask finance whether invoices can list each seat with its invitation date. Tom will draft a
help article in the meantime.

3. Search. Jonas said the new search index is ready for 10% of workspaces. Query latency
in the test group is 60 ms at the median and 400 ms at p99, against 250 ms and 2.1 s today.
The index needs 30% more storage. Ana asked for a measure of result quality, not only speed;
the team agreed to log which result users click and compare click positions between groups.
Decision: start the 10% rollout on Monday.

4. Design system. Mei showed the new colour tokens. Contrast now passes WCAG AA everywhere
except disabled buttons. No objections; the tokens ship with the next web release.

Next meeting: Thursday, same time. Open question for then: do we keep the desktop app, whose
usage fell to 3% of sessions?
"""

_SPEC = """\
Design note: exporting reports as CSV.

Problem. Customers on the business plan ask to export their usage reports to spreadsheets.
Today they copy tables from the web page by hand, which breaks number formats and loses
rows beyond the first page of 100. Support receives about forty such requests a month.

Proposal. Add an "Export CSV" button to every report page. The export contains every row of
the report with the filters currently applied, not only the visible page. Columns are the
report's columns in the same order, with a header row. Numbers are written without thousands
separators and with a dot as decimal mark; dates in ISO 8601 with a time zone offset; text
fields quoted when they contain a comma, a quote or a line break, with quotes doubled.

Size limits. Reports can reach two million rows. Exports up to 50,000 rows are generated
while the user waits, streamed to the browser as they are produced, so the first bytes arrive
in under a second. Larger exports run as a background job; the user receives an e-mail with a
download link valid for seven days, and the file is compressed with gzip.

Security. An export contains exactly what the user may see on the page: the same permission
checks run for every row. Download links are signed and expire. Every export is written to
the audit log with the user, the report, the filters and the row count.

Alternatives considered. Excel files keep number formats but need a library that holds the
whole file in memory, which rules out streaming; customers who need them can open the CSV in
Excel. A public API for reports is planned for next year and will make exports less needed,
but customers asked for a button now.

Open questions. Should scheduled exports be part of this project? Should the CSV use the
user's locale for numbers? The proposal says no to both, to keep the first version small.
"""

_SUPPORT_EMAIL = """\
From: Dana Whitfield <dana.whitfield@example.com>
Subject: Charged twice for the annual plan

Hello, I was charged twice for the annual plan on 3 October, once on my Visa ending 4242
and again the next day. Please refund one of the two payments. You can reach me at
+1 415 555 0132 during office hours if you need anything else. Thanks, Dana
"""

_DEBUG_CONFIG = """\
My script fails with "401 Unauthorized" when it calls the API. Here is the config it reads:

base_url: https://api.example.com/v1
api_key: sk-proj-Xy7Qb2LmN9vR4tW8kP3sD6fH1jZ5cA0e
timeout: 30

and the call:

    client = Client(base_url=cfg["base_url"], api_key=cfg["api_key"])
    client.chat("hello")

What is wrong?
"""

REQUESTS: list[tuple[str, dict[str, Any]]] = [
    ("short", _chat("What is the capital of Australia?", 32)),
    ("short", _chat("Give me three synonyms for 'quick'.", 32)),
    ("short", _chat("How many minutes are there in a week? Show the arithmetic.", 64)),
    ("short", _chat("Explain in one sentence what an HTTP 429 status means.", 48)),
    ("summary", _chat(f"Summarise this incident review in five points.\n\n{_POSTMORTEM}", 200)),
    ("summary", _chat(f"List the decisions and open questions in these notes.\n\n{_MEETING}", 200)),
    ("summary", _chat(f"Summarise this design note for an executive in 80 words.\n\n{_SPEC}", 160)),
    (
        "summary",
        _chat(f"Summarise this customer e-mail and draft a short reply.\n\n{_SUPPORT_EMAIL}", 160),
    ),
    (
        "code",
        _chat(
            "Write a Python function that returns the n-th Fibonacci number iteratively, "
            "with a docstring and type hints.",
            200,
        ),
    ),
    (
        "code",
        _chat(
            "Write a SQL query that returns, for each customer, the total of their orders in "
            "2025, from tables customers(id, name) and orders(id, customer_id, total, "
            "created_at), highest total first.",
            160,
        ),
    ),
    (
        "code",
        _chat(
            "Fix the bug in this JavaScript function and explain it in one sentence:\n\n"
            "function average(xs) {\n  let sum = 0;\n  for (let i = 0; i <= xs.length; i++) "
            "sum += xs[i];\n  return sum / xs.length;\n}",
            160,
        ),
    ),
    ("code", _chat(_DEBUG_CONFIG, 160, system=False)),
]
