-- Records per predicted class and run date, and their share of that run date's records.
SELECT run_date,
       predicted_class,
       COUNT(*) AS records,
       COUNT(*) / SUM(COUNT(*)) OVER (PARTITION BY run_date) AS share
FROM scores
WHERE run_id IN (SELECT run_id FROM runs)
GROUP BY run_date, predicted_class
ORDER BY run_date, array_position({class_order}, predicted_class), predicted_class
