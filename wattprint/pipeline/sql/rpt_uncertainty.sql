-- The uncertainty bands (interval arithmetic) of the headline over the scope's rows (rpt_scope.sql): per row, its
-- energy scaled by the bounds of its energy_quality, its intensity by those of its intensity_quality, its PUE by
-- those of a declared or a defaulted PUE (clusters.pue_known), its embodied emissions by the amortisation bounds;
-- the bounds are the temp table rpt_bounds (input, class, low, high: relative, from data/uncertainty.csv; an energy
-- quality not listed takes class 'other'). Every factor is positive, so the lowest headline is the sum of each row
-- at its low bounds and the highest the sum at its high bounds. Priced with emissions_g, as the point value; summed
-- as decimals (exact_sum), so the same rows give the same band, bit for bit.
-- The layers in the headline, as layers.Sums.headline_kg: $g gpu, $c cpu, $n node, $k idle (pro-rata), $p pue,
-- $m embodied. A node row's energy (the node residual) takes the bounds of its BMC reading's energy_quality.
-- One row per grouping: the scope ('total', ''), each phase ('phase', phase), each project ('project', project or '').
WITH
b AS (
    SELECT r.phase, coalesce(r.project, '') AS project,
           CASE WHEN $g THEN r.energy_j ELSE 0 END + $c * r.cpu_j + $n * r.node_j
               + $k * (r.idle_j + $c * r.cpu_idle_j + $n * r.node_idle_j) AS own_j,
           r.energy_j + $c * r.cpu_j + $n * r.node_j + $k * (r.idle_j + $c * r.cpu_idle_j + $n * r.node_idle_j)
               AS pue_j,
           coalesce(r.intensity_g_per_kwh, 0) AS g_per_kwh, r.pue, r.emb_g,
           coalesce(e.low, o.low) AS e_lo, coalesce(e.high, o.high) AS e_hi,
           i.low AS i_lo, i.high AS i_hi, u.low AS u_lo, u.high AS u_hi, m.low AS m_lo, m.high AS m_hi
    FROM rpt_rows r
    LEFT JOIN clusters cl ON cl.cluster = r.cluster
    LEFT JOIN rpt_bounds e ON e.input = 'energy' AND e.class = r.energy_quality
    JOIN rpt_bounds o ON o.input = 'energy' AND o.class = 'other'
    JOIN rpt_bounds i ON i.input = 'intensity' AND i.class = coalesce(r.intensity_quality, 'world_default')
    JOIN rpt_bounds u ON u.input = 'pue'
                     AND u.class = CASE WHEN coalesce(cl.pue_known, false) THEN 'declared' ELSE 'default' END
    JOIN rpt_bounds m ON m.input = 'embodied' AND m.class = 'amortised'
),
priced AS (
    SELECT phase, project,
           emissions_g(own_j, g_per_kwh, 1.0)
             + CASE WHEN $p THEN emissions_g(pue_j, g_per_kwh, pue - 1.0) ELSE 0 END
             + CASE WHEN $m THEN emb_g ELSE 0 END AS point_g,
           emissions_g(own_j * (1 + e_lo), g_per_kwh * (1 + i_lo), 1.0)
             + CASE WHEN $p THEN emissions_g(pue_j * (1 + e_lo), g_per_kwh * (1 + i_lo),
                                             greatest(1.0, pue * (1 + u_lo)) - 1.0) ELSE 0 END
             + CASE WHEN $m THEN emb_g * (1 + m_lo) ELSE 0 END AS low_g,
           emissions_g(own_j * (1 + e_hi), g_per_kwh * (1 + i_hi), 1.0)
             + CASE WHEN $p THEN emissions_g(pue_j * (1 + e_hi), g_per_kwh * (1 + i_hi),
                                             greatest(1.0, pue * (1 + u_hi)) - 1.0) ELSE 0 END
             + CASE WHEN $m THEN emb_g * (1 + m_hi) ELSE 0 END AS high_g
    FROM b
)
SELECT CASE WHEN grouping(phase) = 0 THEN 'phase' WHEN grouping(project) = 0 THEN 'project' ELSE 'total' END AS kind,
       coalesce(CASE WHEN grouping(phase) = 0 THEN phase ELSE project END, '') AS name,
       coalesce(exact_sum(point_g), 0) AS point_g, coalesce(exact_sum(low_g), 0) AS low_g,
       coalesce(exact_sum(high_g), 0) AS high_g
FROM priced
GROUP BY GROUPING SETS ((), (phase), (project))
ORDER BY kind, name
