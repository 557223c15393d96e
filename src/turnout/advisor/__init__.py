"""Evidence for the API-or-local decision: ``turnout compare`` (measure a workload against
several models, price it, write the report) and ``turnout advise`` (the same analysis over the
request log). See docs/compare.md."""
