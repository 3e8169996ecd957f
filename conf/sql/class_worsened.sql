-- Customers whose predicted class in their latest run date is worse (later in the class order,
-- best to worst) than in their previous scored run date. A run date scored twice counts with
-- its latest score (as in latest_scores); classes outside the order are never compared.
WITH per_run_date AS (
    SELECT customer_id, run_date, predicted_class
    FROM (
        SELECT customer_id, run_date, predicted_class,
               ROW_NUMBER() OVER (PARTITION BY customer_id, run_date
                                  ORDER BY scored_at DESC, run_id DESC, record_id DESC) AS _latest
        FROM scores
        WHERE run_id IN (SELECT run_id FROM runs)
    )
    WHERE _latest = 1
), ranked AS (
    SELECT customer_id,
           LAG(run_date) OVER (PARTITION BY customer_id ORDER BY run_date) AS previous_run_date,
           LAG(predicted_class) OVER (PARTITION BY customer_id ORDER BY run_date) AS previous_class,
           run_date,
           predicted_class,
           ROW_NUMBER() OVER (PARTITION BY customer_id ORDER BY run_date DESC) AS recency
    FROM per_run_date
)
SELECT customer_id, previous_run_date, previous_class, run_date, predicted_class
FROM ranked
WHERE recency = 1
  AND previous_run_date IS NOT NULL
  AND array_position({class_order}, previous_class) > 0
  AND array_position({class_order}, predicted_class) > array_position({class_order}, previous_class)
ORDER BY customer_id
