"""Versioned ledger schema: named migrations, applied in order, each exactly once.

Append new migrations; never edit one that has shipped.

The ledger is a DuckLake, which has no PRIMARY KEY, UNIQUE or CHECK constraints: the keys noted
in comments are kept by ingest (``staging.py``: anti-joins in one transaction), and the token
CHECK by ingest's ``INGEST_COUNTS_SQL``. These migrations were rewritten once, without them, when
the ledger moved from one DuckDB file to the lake; files from before are imported, not migrated.
The same SQL builds a plain DuckDB database (``analysis.synthetic``).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    sql: str


MIGRATIONS: tuple[Migration, ...] = (
    Migration(
        1,
        "create_core_tables",
        """
        CREATE TABLE runs (
            run_id        VARCHAR NOT NULL,   -- key
            created_at    TIMESTAMP NOT NULL,
            fingerprint   VARCHAR NOT NULL,
            engine        VARCHAR NOT NULL,   -- backend and model, e.g. 'vllm:/models/x'
            engine_kind   VARCHAR NOT NULL,   -- vllm | openai | scripted
            seed          BIGINT NOT NULL,
            request_json  JSON NOT NULL,      -- the BatchRequest (no credentials in it)
            versions_json JSON NOT NULL,      -- engine/model/library versions
            prompts_json  JSON NOT NULL       -- profile and prompt templates used
        );
        CREATE TABLE items (
            run_id        VARCHAR NOT NULL,
            item_id       VARCHAR NOT NULL,
            dataset       VARCHAR NOT NULL,
            language      VARCHAR NOT NULL,
            question      VARCHAR NOT NULL,
            gold          VARCHAR NOT NULL,
            metadata_json JSON                -- key: (run_id, item_id)
        );
        -- One row per generation call, kept or discarded. The only source of token counts.
        CREATE TABLE generation_calls (
            run_id             VARCHAR NOT NULL,
            item_id            VARCHAR NOT NULL,
            strategy           VARCHAR NOT NULL,
            budget             INTEGER NOT NULL,
            sample_index       INTEGER NOT NULL,
            call_index         INTEGER NOT NULL,  -- order of calls within one sample
            phase              VARCHAR NOT NULL,  -- sample | thinking | extension | answer | refine
            prompt_tokens      INTEGER NOT NULL,
            completion_tokens  INTEGER NOT NULL,
            thinking_tokens    INTEGER NOT NULL,
            answer_tokens      INTEGER NOT NULL,
            finish_reason      VARCHAR NOT NULL,
            stop_reason        VARCHAR,
            latency_s          DOUBLE NOT NULL,
            used               BOOLEAN NOT NULL,  -- false: the strategy discarded this output
            seed               BIGINT,
            cumulative_logprob DOUBLE,
            score              DOUBLE,            -- scorer output, if the strategy scored it
            extracted_answer   VARCHAR,
            completion_text    VARCHAR
            -- key: (run_id, item_id, strategy, budget, sample_index, call_index);
            -- completion_tokens = thinking_tokens + answer_tokens (checked at ingest)
        );
        -- One row per (item, strategy, budget): the outcome and why the strategy stopped.
        CREATE TABLE item_decisions (
            run_id            VARCHAR NOT NULL,
            item_id           VARCHAR NOT NULL,
            strategy          VARCHAR NOT NULL,
            budget            INTEGER NOT NULL,
            final_answer      VARCHAR,
            correct           BOOLEAN NOT NULL,
            stop_reason       VARCHAR NOT NULL,   -- budget_reached | converged | cap | error ...
            samples_used      INTEGER NOT NULL,
            calls             INTEGER NOT NULL,
            prompt_tokens     BIGINT NOT NULL,
            completion_tokens BIGINT NOT NULL,
            thinking_tokens   BIGINT NOT NULL,
            answer_tokens     BIGINT NOT NULL,
            answered_language VARCHAR,
            detail_json       JSON,               -- strategy-specific decision data (votes, N*...)
            error             VARCHAR             -- key: (run_id, item_id, strategy, budget)
        );
        CREATE TABLE input_errors (
            run_id  VARCHAR NOT NULL,
            object  VARCHAR NOT NULL,
            line    INTEGER NOT NULL,
            field   VARCHAR,
            reason  VARCHAR NOT NULL          -- key: (run_id, object, line)
        );
        """,
    ),
    Migration(
        2,
        "create_spend_and_cost_views",
        """
        -- Token spend per item and unit, summed from the call rows (never from decisions).
        CREATE VIEW item_spend AS
        SELECT run_id, item_id, strategy, budget,
               count(*)                    AS calls,
               count(*) FILTER (WHERE NOT used) AS discarded_calls,
               sum(prompt_tokens)          AS prompt_tokens,
               sum(completion_tokens)      AS completion_tokens,
               sum(thinking_tokens)        AS thinking_tokens,
               sum(answer_tokens)          AS answer_tokens,
               sum(latency_s)              AS latency_s
        FROM generation_calls
        GROUP BY ALL;

        CREATE VIEW cost_accuracy AS
        SELECT d.run_id, i.dataset, i.language, d.strategy, d.budget,
               count(*)                             AS items,
               avg(d.correct::INTEGER)              AS accuracy,
               avg(s.completion_tokens)             AS mean_completion_tokens,
               avg(s.thinking_tokens)               AS mean_thinking_tokens,
               avg(s.prompt_tokens)                 AS mean_prompt_tokens,
               sum(s.completion_tokens)             AS total_completion_tokens,
               sum(s.prompt_tokens)                 AS total_prompt_tokens
        FROM item_decisions d
        JOIN items i USING (run_id, item_id)
        JOIN item_spend s USING (run_id, item_id, strategy, budget)
        GROUP BY ALL;
        """,
    ),
    Migration(
        3,
        "add_run_lifecycle",
        """
        -- When a run started and finished, how it ended, and what ran it.
        ALTER TABLE runs ADD COLUMN started_at TIMESTAMP;
        ALTER TABLE runs ADD COLUMN finished_at TIMESTAMP;
        ALTER TABLE runs ADD COLUMN status VARCHAR;          -- ingested | completed | failed
        ALTER TABLE runs ADD COLUMN flow_run_id VARCHAR;
        ALTER TABLE runs ADD COLUMN ttscale_version VARCHAR;
        -- One line per run: what `ttscale runs` prints.
        CREATE VIEW run_summary AS
        SELECT r.run_id, r.status, coalesce(r.started_at, r.created_at) AS started_at,
               r.finished_at,
               date_diff('second', coalesce(r.started_at, r.created_at), r.finished_at)
                   AS duration_s,
               r.engine, r.engine_kind,
               (SELECT count(*) FROM items i WHERE i.run_id = r.run_id) AS items,
               (SELECT count(*) FROM item_decisions d WHERE d.run_id = r.run_id) AS units,
               (SELECT coalesce(sum(d.prompt_tokens + d.completion_tokens), 0)
                  FROM item_decisions d WHERE d.run_id = r.run_id) AS tokens,
               (SELECT avg(d.correct::INTEGER) FROM item_decisions d
                  WHERE d.run_id = r.run_id AND d.stop_reason <> 'error') AS accuracy
        FROM runs r;
        """,
    ),
    Migration(
        4,
        "add_ingest_lock",
        """
        -- One row that every ingest updates first. DuckLake lets two transactions insert into a
        -- table at once, so two ingests of the same run could both pass the anti-join; any two
        -- that delete from the same table conflict at commit, so the later one rolls back, is
        -- retried, and sees the first's rows. (A SQLite catalog in WAL mode serialises them too.)
        CREATE TABLE ingest_lock (ingests BIGINT NOT NULL);
        INSERT INTO ingest_lock VALUES (0);
        """,
    ),
    Migration(
        5,
        "add_report_figures_and_sweep_cost",
        """
        -- What ran (the model apart from the engine) and what the run cost, counted both ways:
        -- attributed = the sum over units of what each alone would cost (completion tokens of
        -- its calls, the x-axis of every curve); generated = what the engine produced, each
        -- shared sample counted once (the sample cache). Set at ingest.
        ALTER TABLE runs ADD COLUMN model VARCHAR;
        ALTER TABLE runs ADD COLUMN tokens_attributed BIGINT;
        ALTER TABLE runs ADD COLUMN tokens_generated BIGINT;
        -- cached: served from the run's sample cache; generated_tokens: tokens this call
        -- accounts for as generated (each generation on one call only). NULL in runs recorded
        -- before the cache, where every call generated all of its completion_tokens.
        ALTER TABLE generation_calls ADD COLUMN cached BOOLEAN;
        ALTER TABLE generation_calls ADD COLUMN generated_tokens INTEGER;

        -- A run's published report, as figures. Written when the report is published; a
        -- re-published report replaces the run's rows (in one transaction).
        CREATE TABLE reports (
            run_id                 VARCHAR NOT NULL,   -- key
            published_at           TIMESTAMP NOT NULL,
            generated_at           VARCHAR NOT NULL,   -- the report's own timestamp (ISO)
            report_schema_version  INTEGER NOT NULL,
            lambda_per_1k_tokens   DOUBLE,
            throughput_tokens_per_second DOUBLE,
            settings_json          JSON NOT NULL
        );
        CREATE TABLE report_curve_points (
            run_id                 VARCHAR NOT NULL,
            dataset                VARCHAR NOT NULL,
            language               VARCHAR NOT NULL,
            strategy               VARCHAR NOT NULL,
            budget                 INTEGER NOT NULL,   -- key: (run_id, dataset, language, strategy, budget)
            items                  INTEGER NOT NULL,
            correct                INTEGER NOT NULL,
            accuracy               DOUBLE NOT NULL,
            accuracy_low           DOUBLE NOT NULL,    -- bootstrap CI (report's confidence)
            accuracy_high          DOUBLE NOT NULL,
            mean_completion_tokens DOUBLE NOT NULL,
            completion_tokens_low  DOUBLE NOT NULL,
            completion_tokens_high DOUBLE NOT NULL,
            mean_prompt_tokens     DOUBLE NOT NULL,
            mean_thinking_tokens   DOUBLE NOT NULL,
            usd_per_item           DOUBLE,
            usd_per_correct        DOUBLE,
            on_frontier            BOOLEAN NOT NULL
        );
        -- One row per rule's recommendation of a slice, or one row with strategy NULL and the
        -- reason (withheld) when the slice gets none.
        CREATE TABLE report_recommendations (
            run_id                 VARCHAR NOT NULL,
            dataset                VARCHAR NOT NULL,
            language               VARCHAR NOT NULL,
            rule                   VARCHAR,            -- marginal_gain | utility
            strategy               VARCHAR,
            budget                 INTEGER,
            accuracy               DOUBLE,
            accuracy_low           DOUBLE,
            accuracy_high          DOUBLE,
            mean_completion_tokens DOUBLE,
            usd_per_item           DOUBLE,
            threshold              DOUBLE,             -- τ or λ, points per 1k tokens
            plateau_reached        BOOLEAN,
            capped_by_decline      BOOLEAN,
            withheld               VARCHAR,            -- why none is recommended
            needed                 VARCHAR             -- what would make one possible
        );
        CREATE TABLE report_saturation (
            run_id           VARCHAR NOT NULL,
            dataset          VARCHAR NOT NULL,
            language         VARCHAR NOT NULL,
            strategy         VARCHAR NOT NULL,         -- key: (run_id, dataset, language, strategy)
            kind             VARCHAR NOT NULL,         -- parallel | sequential
            unit             VARCHAR NOT NULL,
            f_max            DOUBLE NOT NULL,
            p                DOUBLE NOT NULL,
            epsilon          DOUBLE NOT NULL,
            saturation_point DOUBLE,                   -- N*, in the budget's unit
            extrapolated     BOOLEAN NOT NULL,
            budgets          INTEGER[] NOT NULL,
            deviance         DOUBLE
        );
        CREATE TABLE report_inverse_scaling (
            run_id               VARCHAR NOT NULL,
            dataset              VARCHAR NOT NULL,
            language             VARCHAR NOT NULL,
            strategy             VARCHAR NOT NULL,     -- key: (run_id, dataset, language, strategy)
            cap_budget           INTEGER,              -- largest budget a recommendation may use
            significant_declines INTEGER NOT NULL,     -- pairwise McNemar tests significant (Holm)
            trend_token_measure  VARCHAR,
            trend_slope_points_per_1k_tokens DOUBLE,
            trend_p_value        DOUBLE,
            trend_p_holm         DOUBLE,
            trend_significant    BOOLEAN,
            pairwise_json        JSON NOT NULL         -- every pairwise test, as the report has it
        );

        -- One line per run: what `ttscale runs` prints, now with model and both costs.
        CREATE OR REPLACE VIEW run_summary AS
        SELECT r.run_id, r.status, coalesce(r.started_at, r.created_at) AS started_at,
               r.finished_at,
               date_diff('second', coalesce(r.started_at, r.created_at), r.finished_at)
                   AS duration_s,
               r.engine, r.engine_kind, r.model,
               (SELECT count(*) FROM items i WHERE i.run_id = r.run_id) AS items,
               (SELECT count(*) FROM item_decisions d WHERE d.run_id = r.run_id) AS units,
               (SELECT coalesce(sum(d.prompt_tokens + d.completion_tokens), 0)
                  FROM item_decisions d WHERE d.run_id = r.run_id) AS tokens,
               r.tokens_attributed, r.tokens_generated,
               r.tokens_attributed / nullif(r.tokens_generated, 0) AS sweep_saving,
               (SELECT avg(d.correct::INTEGER) FROM item_decisions d
                  WHERE d.run_id = r.run_id AND d.stop_reason <> 'error') AS accuracy
        FROM runs r;
        -- The most recently started run: `WHERE run_id = (SELECT run_id FROM latest_run)`.
        CREATE VIEW latest_run AS
        SELECT run_id FROM runs
        ORDER BY coalesce(started_at, created_at) DESC, created_at DESC, run_id DESC
        LIMIT 1;
        -- Answered units only (errored ones are reported apart, as in the report).
        CREATE VIEW accuracy_by_budget AS
        SELECT d.run_id, d.strategy, d.budget,
               count(*)                              AS items,
               count(*) FILTER (WHERE d.correct)     AS correct,
               avg(d.correct::INTEGER)               AS accuracy,
               avg(d.completion_tokens)              AS mean_completion_tokens,
               avg(d.prompt_tokens)                  AS mean_prompt_tokens,
               sum(d.completion_tokens)              AS total_completion_tokens
        FROM item_decisions d
        WHERE d.stop_reason <> 'error'
        GROUP BY ALL;
        CREATE VIEW accuracy_by_language AS
        SELECT d.run_id, i.language, d.strategy, d.budget,
               count(*)                              AS items,
               count(*) FILTER (WHERE d.correct)     AS correct,
               avg(d.correct::INTEGER)               AS accuracy,
               avg(d.completion_tokens)              AS mean_completion_tokens,
               sum(d.completion_tokens)              AS total_completion_tokens
        FROM item_decisions d
        JOIN items i USING (run_id, item_id)
        WHERE d.stop_reason <> 'error'
        GROUP BY ALL;
        -- Completion tokens spent per correct answer (NULL where none was right).
        CREATE VIEW cost_per_correct AS
        SELECT d.run_id, i.dataset, i.language, d.strategy, d.budget,
               count(*)                              AS items,
               count(*) FILTER (WHERE d.correct)     AS correct,
               sum(d.completion_tokens)              AS total_completion_tokens,
               sum(d.completion_tokens) / nullif(count(*) FILTER (WHERE d.correct), 0)
                   AS tokens_per_correct
        FROM item_decisions d
        JOIN items i USING (run_id, item_id)
        WHERE d.stop_reason <> 'error'
        GROUP BY ALL;
        """,
    ),
    Migration(
        6,
        "add_call_confidence",
        """
        -- DeepConf token confidence per call (strategies/confidence.py), NULL when the call
        -- asked for no top-k logprobs: mean token confidence, the lowest mean over a sliding
        -- window, and the mean over the last tokens. Replays read them instead of logprobs.
        ALTER TABLE generation_calls ADD COLUMN mean_confidence DOUBLE;
        ALTER TABLE generation_calls ADD COLUMN lowest_group_confidence DOUBLE;
        ALTER TABLE generation_calls ADD COLUMN tail_confidence DOUBLE;
        """,
    ),
)
