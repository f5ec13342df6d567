"""SQL that the cost–accuracy reports run against the ledger (all parameters are positional).

Token counts always come from ``generation_calls`` (through the ``item_spend`` view), never from
the copies in ``item_decisions``: the call rows are the ledger's single source of token counts.
"""

from __future__ import annotations

RUN_METADATA = """
SELECT run_id, CAST(created_at AS VARCHAR) AS created_at, fingerprint, engine, engine_kind, seed,
       CAST(request_json AS VARCHAR), CAST(versions_json AS VARCHAR), CAST(prompts_json AS VARCHAR)
FROM runs
WHERE run_id = ?
"""

INPUT_ERROR_COUNT = "SELECT count(*) FROM input_errors WHERE run_id = ?"

# Decisions joined to their spend; a decision whose calls are missing spends zero tokens rather
# than vanishing from the accuracy denominator. Errored units are not answers, right or wrong:
# they are left out here and counted on their own (ERRORED_UNITS).
_DECISION_SPEND = """
SELECT i.dataset, i.language, d.strategy, d.budget, d.item_id, d.correct, d.stop_reason,
       coalesce(s.calls, 0)             AS calls,
       coalesce(s.discarded_calls, 0)   AS discarded_calls,
       coalesce(s.prompt_tokens, 0)     AS prompt_tokens,
       coalesce(s.completion_tokens, 0) AS completion_tokens,
       coalesce(s.thinking_tokens, 0)   AS thinking_tokens,
       coalesce(s.latency_s, 0)         AS latency_s
FROM item_decisions d
JOIN items i USING (run_id, item_id)
LEFT JOIN item_spend s USING (run_id, item_id, strategy, budget)
WHERE d.run_id = ? AND d.stop_reason <> 'error'
"""

ERRORED_UNITS = "SELECT count(*) FROM item_decisions WHERE run_id = ? AND stop_reason = 'error'"

# Three of the report's queries read the decisions with their spend: the spend of every unit is
# summed once per report, into a temporary table (the connection's own, so a read-only one can).
DECISION_SPEND_TABLE = "report_decision_spend"
CREATE_DECISION_SPEND = f"CREATE OR REPLACE TEMP TABLE {DECISION_SPEND_TABLE} AS {_DECISION_SPEND}"

# The report's matrices are indexed by numbers, not names: each (dataset, language) slice, and
# within it each (strategy, budget) config and each item, numbered densely in name order. The
# names are read once each; the decisions are read as numbers only (ITEM_OUTCOMES), and need no
# sort (a row says where it goes).
CREATE_OUTCOME_INDICES: tuple[str, ...] = (
    f"""CREATE OR REPLACE TEMP TABLE report_slices AS
    SELECT dataset, language,
           (row_number() OVER (ORDER BY dataset, language) - 1)::INTEGER AS slice_index
    FROM (SELECT DISTINCT dataset, language FROM {DECISION_SPEND_TABLE})""",
    f"""CREATE OR REPLACE TEMP TABLE report_configs AS
    SELECT s.slice_index, c.dataset, c.language, c.strategy, c.budget,
           (row_number() OVER (PARTITION BY s.slice_index ORDER BY c.strategy, c.budget) - 1)
               ::INTEGER AS config_index
    FROM (SELECT DISTINCT dataset, language, strategy, budget FROM {DECISION_SPEND_TABLE}) c
    JOIN report_slices s USING (dataset, language)""",
    f"""CREATE OR REPLACE TEMP TABLE report_items AS
    SELECT s.slice_index, i.dataset, i.language, i.item_id,
           (row_number() OVER (PARTITION BY s.slice_index ORDER BY i.item_id) - 1)::INTEGER
               AS item_index
    FROM (SELECT DISTINCT dataset, language, item_id FROM {DECISION_SPEND_TABLE}) i
    JOIN report_slices s USING (dataset, language)""",
)
OUTCOME_SLICES = "SELECT dataset, language FROM report_slices ORDER BY slice_index"
OUTCOME_CONFIGS = """SELECT slice_index, strategy, budget FROM report_configs
ORDER BY slice_index, config_index"""
OUTCOME_ITEMS = "SELECT slice_index, item_id FROM report_items ORDER BY slice_index, item_index"
DROP_REPORT_TABLES = tuple(
    f"DROP TABLE IF EXISTS {table}"
    for table in (DECISION_SPEND_TABLE, "report_slices", "report_configs", "report_items")
)

# The per-group summary both the all-slices and the per-slice tables report.
_SUMMARY_COLUMNS = """
       count(*)                      AS items,
       count(*) FILTER (WHERE correct) AS correct,
       avg(correct::INTEGER)         AS accuracy,
       avg(completion_tokens)        AS mean_completion_tokens,
       sum(completion_tokens)        AS total_completion_tokens,
       avg(prompt_tokens)            AS mean_prompt_tokens,
       sum(prompt_tokens)            AS total_prompt_tokens,
       avg(thinking_tokens)          AS mean_thinking_tokens,
       sum(calls)                    AS calls,
       sum(discarded_calls)          AS discarded_calls"""

SUMMARY_BY_STRATEGY_BUDGET = f"""
WITH ds AS (FROM {DECISION_SPEND_TABLE})
SELECT strategy, budget,{_SUMMARY_COLUMNS}
FROM ds
GROUP BY strategy, budget
ORDER BY strategy, budget
"""

SUMMARY_BY_SLICE = f"""
WITH ds AS (FROM {DECISION_SPEND_TABLE})
SELECT dataset, language, strategy, budget,{_SUMMARY_COLUMNS}
FROM ds
GROUP BY dataset, language, strategy, budget
ORDER BY dataset, language, strategy, budget
"""

STOP_REASONS = """
SELECT strategy, budget, stop_reason, count(*) AS decisions
FROM item_decisions
WHERE run_id = ?
GROUP BY ALL
ORDER BY strategy, budget, decisions DESC, stop_reason
"""

# One row per decision, as numbers (CREATE_OUTCOME_INDICES), so numpy can scatter it into
# item × config matrices per slice.
ITEM_OUTCOMES = f"""
SELECT c.slice_index, i.item_index, c.config_index,
       ds.correct::DOUBLE AS correct,
       ds.completion_tokens::DOUBLE AS completion_tokens,
       ds.prompt_tokens::DOUBLE AS prompt_tokens,
       ds.thinking_tokens::DOUBLE AS thinking_tokens
FROM {DECISION_SPEND_TABLE} ds
JOIN report_configs c USING (dataset, language, strategy, budget)
JOIN report_items i USING (dataset, language, item_id)
"""

# Every total of the run's calls, in one scan:
# - all calls: count, prompt, completion and thinking tokens, discarded (not used) calls;
# - per-stream decode throughput: completion tokens over summed latency of generation calls (not
#   'score'). Concurrent batching makes the real GPU throughput higher, so costs priced with it
#   are an upper bound;
# - scoring calls (phase 'score'): what a reward model read to score samples. Their tokens are
#   prompt tokens; they generate none, so the completion-token axis of every curve leaves them out;
# - tokens the engine generated: each generation is accounted on exactly one call (the sample
#   cache's ``generated_tokens``), not necessarily an uncached one, so the sum runs over every
#   call; calls from before the cache (NULL) generated all of their completion tokens.
CALL_TOTALS = """
SELECT count(*), coalesce(sum(prompt_tokens), 0), coalesce(sum(completion_tokens), 0),
       coalesce(sum(thinking_tokens), 0), count(*) FILTER (WHERE NOT used),
       sum(completion_tokens) FILTER (WHERE phase <> 'score')::DOUBLE,
       sum(latency_s) FILTER (WHERE phase <> 'score'),
       count(*) FILTER (WHERE phase = 'score'),
       coalesce(sum(prompt_tokens) FILTER (WHERE phase = 'score'), 0),
       coalesce(sum(coalesce(generated_tokens, completion_tokens)), 0)
FROM generation_calls
WHERE run_id = ?
"""

# The decline-example candidates of every pair that a decline test can compare: for each
# consecutive pair of budgets of a strategy in a slice (the budgets ITEM_OUTCOMES has, so the
# pairs are those of the report's curves), the first items by id that are right at the lower
# budget and wrong at the higher one. Which pairs a report shows depends on the tests, which run
# on the read data, so the report picks from these instead of querying again.
DECLINE_CANDIDATES = """
WITH budgets AS (
    SELECT DISTINCT i.dataset, i.language, d.strategy, d.budget
    FROM item_decisions d
    JOIN items i USING (run_id, item_id)
    WHERE d.run_id = $run_id AND d.stop_reason <> 'error'
), pairs AS (
    SELECT dataset, language, strategy, budget AS lower_budget,
           lead(budget) OVER (PARTITION BY dataset, language, strategy ORDER BY budget)
               AS higher_budget
    FROM budgets
), candidates AS (
    SELECT p.dataset, p.language, p.strategy, p.lower_budget, p.higher_budget,
           i.item_id, i.question, i.gold, lo.final_answer AS lower_answer,
           hi.final_answer AS higher_answer,
           row_number() OVER (
               PARTITION BY p.dataset, p.language, p.strategy, p.lower_budget ORDER BY i.item_id
           ) AS rank
    FROM pairs p
    JOIN item_decisions lo
      ON lo.run_id = $run_id AND lo.strategy = p.strategy AND lo.budget = p.lower_budget
    JOIN item_decisions hi
      ON hi.run_id = lo.run_id AND hi.item_id = lo.item_id AND hi.strategy = lo.strategy
         AND hi.budget = p.higher_budget
    JOIN items i
      ON i.run_id = lo.run_id AND i.item_id = lo.item_id
         AND i.dataset = p.dataset AND i.language = p.language
    WHERE p.higher_budget IS NOT NULL AND lo.correct AND NOT hi.correct
)
SELECT dataset, language, strategy, lower_budget, higher_budget, item_id, question, gold,
       lower_answer, higher_answer
FROM candidates
WHERE rank <= $per_pair
ORDER BY dataset, language, strategy, lower_budget, item_id
"""

# Units that probed their thinking (a call in phase 'probe'): samples × thinking tokens per
# sample, per slice. Only the used samples count (Adaptive-Consistency discards a round's tail).
THINKING_AXES = """
WITH probed_units AS (  -- most runs have none: find them first from one column, then sum theirs
    SELECT DISTINCT run_id, item_id, strategy, budget
    FROM generation_calls
    WHERE run_id = $run_id AND phase = 'probe'
), probed AS (
    SELECT run_id, item_id, strategy, budget,
           count(DISTINCT sample_index) FILTER (WHERE used)          AS samples,
           coalesce(sum(thinking_tokens) FILTER (WHERE used), 0)     AS thinking_tokens,
           coalesce(sum(completion_tokens) FILTER (WHERE used AND phase = 'probe'), 0)
                                                                      AS probe_tokens,
           count(*) FILTER (WHERE used AND phase = 'probe')          AS probes
    FROM generation_calls
    SEMI JOIN probed_units USING (run_id, item_id, strategy, budget)
    WHERE run_id = $run_id
    GROUP BY run_id, item_id, strategy, budget
)
SELECT i.dataset, i.language, p.strategy, p.budget,
       count(*)                                                   AS items,
       avg(d.correct::INTEGER)                                    AS accuracy,
       avg(p.samples)                                             AS mean_samples,
       avg(p.thinking_tokens / greatest(p.samples, 1))            AS mean_thinking_tokens_per_sample,
       avg(p.probe_tokens / greatest(p.samples, 1))               AS mean_probe_tokens_per_sample,
       avg(p.probes / greatest(p.samples, 1))                     AS mean_probes_per_sample
FROM probed p
JOIN item_decisions d USING (run_id, item_id, strategy, budget)
JOIN items i USING (run_id, item_id)
WHERE d.stop_reason <> 'error'
GROUP BY ALL
ORDER BY i.dataset, i.language, p.strategy, p.budget
"""
