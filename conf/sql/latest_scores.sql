-- The latest score of every customer: the row of the greatest run_date (a rescore of the same
-- run date: the greatest scored_at), with all columns of `scores`. Only nights recorded in `runs`
-- (scores and monitoring both committed) count, as in every shipped view.
SELECT * EXCEPT (_latest)
FROM (
    SELECT *,
           ROW_NUMBER() OVER (PARTITION BY customer_id
                              ORDER BY run_date DESC, scored_at DESC, run_id DESC, record_id DESC) AS _latest
    FROM scores
    WHERE run_id IN (SELECT run_id FROM runs)
)
WHERE _latest = 1
