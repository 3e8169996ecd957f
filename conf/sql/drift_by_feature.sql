-- Population stability per feature and run date (psi: the score and inputs, csi: inputs), with
-- its status against the thresholds recorded by the monitoring run.
SELECT run_date, name AS feature, metric, value AS psi, status
FROM monitoring
WHERE metric IN ('psi', 'csi')
  AND run_id IN (SELECT run_id FROM runs)
ORDER BY feature, run_date, metric
