-- The uncertainty bands (interval arithmetic) of the market-based headline (--scope2-basis market) over the scope's
-- rows, as rpt_uncertainty.sql does the location-based one. Each row's Scope 2 electricity (rpt_scope2_energy.sql) is
-- priced by the rule of its (project, phase, cluster, hour) of rpt_scope2_priced.sql (scope2_market_part_g), with:
--   energy   scaled by the bounds of its energy_quality, and its PUE by those of a declared or defaulted PUE (the
--            electricity the instruments and the residual mix price is the facility's);
--   the contractual instruments' factors by the bounds of class 'contractual' (input 'intensity': 0, exact by
--            contract), their covered share of the cell held as matched;
--   the residual mix scaled by the bounds of class 'residual_mix' (input 'intensity');
--   energy priced at the location-based fallback (no residual mix known) by the bounds of its intensity_quality, as
--            in the location-based band;
--   embodied emissions by the amortisation bounds.
-- Every factor is positive, so the lowest headline is the sum of each row at its low bounds and the highest the sum at
-- its high bounds. Summed as decimals (exact_sum): the same rows give the same band, bit for bit.
-- The layers in the headline: $c cpu, $n node, $k idle (pro-rata), $p pue, $m embodied (gpu is always in it).
-- One row per grouping: the scope ('total', ''), each phase ('phase', phase), each project ('project', project or '').
WITH
cell AS (
    SELECT project, phase, cluster, zone, hour_ts,
           CASE WHEN energy_j > 0 THEN instrument_g / energy_j ELSE 0 END AS instrument_g_per_j,
           CASE WHEN energy_j > 0 THEN uncovered_j / energy_j ELSE 0 END AS uncovered_share,
           residual_g_per_kwh
    FROM rpt_scope2_priced
),
b AS (
    SELECT r.phase, coalesce(r.project, '') AS project,
           r.energy_j + $c * r.cpu_j + $n * r.node_j + $k * (r.idle_j + $c * r.cpu_idle_j + $n * r.node_idle_j)
               AS it_j,
           coalesce(r.intensity_g_per_kwh, 0) AS g_per_kwh, r.pue, r.emb_g,
           coalesce(x.instrument_g_per_j, 0) AS instrument_g_per_j,
           coalesce(x.uncovered_share, 1) AS uncovered_share, x.residual_g_per_kwh,
           coalesce(e.low, o.low) AS e_lo, coalesce(e.high, o.high) AS e_hi,
           i.low AS i_lo, i.high AS i_hi, u.low AS u_lo, u.high AS u_hi, m.low AS m_lo, m.high AS m_hi,
           rm.low AS rm_lo, rm.high AS rm_hi, ct.low AS ct_lo, ct.high AS ct_hi
    FROM rpt_rows r
    LEFT JOIN cell x ON x.project = coalesce(r.project, '') AND x.phase = r.phase AND x.cluster = r.cluster
                    AND x.zone IS NOT DISTINCT FROM r.zone AND x.hour_ts = r.hour_ts
    LEFT JOIN clusters cl ON cl.cluster = r.cluster
    LEFT JOIN rpt_bounds e ON e.input = 'energy' AND e.class = r.energy_quality
    JOIN rpt_bounds o ON o.input = 'energy' AND o.class = 'other'
    JOIN rpt_bounds i ON i.input = 'intensity' AND i.class = coalesce(r.intensity_quality, 'world_default')
    JOIN rpt_bounds u ON u.input = 'pue'
                     AND u.class = CASE WHEN coalesce(cl.pue_known, false) THEN 'declared' ELSE 'default' END
    JOIN rpt_bounds m ON m.input = 'embodied' AND m.class = 'amortised'
    JOIN rpt_bounds rm ON rm.input = 'intensity' AND rm.class = 'residual_mix'
    JOIN rpt_bounds ct ON ct.input = 'intensity' AND ct.class = 'contractual'
),
-- each side's inputs: the row's Scope 2 electricity (j) and its location-based grams (g) at the side's energy,
-- intensity and PUE bounds; the instruments' grams per joule and the residual mix at the side's bounds
side AS (
    SELECT phase, project, emb_g, uncovered_share, instrument_g_per_j,
           it_j * (1 + $p * (pue - 1.0)) AS j,
           emissions_g(it_j, g_per_kwh, 1.0) + $p * emissions_g(it_j, g_per_kwh, pue - 1.0) AS g,
           residual_g_per_kwh AS residual,
           it_j * (1 + e_lo) * (1 + $p * (greatest(1.0, pue * (1 + u_lo)) - 1.0)) AS j_lo,
           emissions_g(it_j * (1 + e_lo), g_per_kwh * (1 + i_lo), 1.0)
             + $p * emissions_g(it_j * (1 + e_lo), g_per_kwh * (1 + i_lo), greatest(1.0, pue * (1 + u_lo)) - 1.0)
             AS g_lo,
           instrument_g_per_j * (1 + ct_lo) AS instrument_lo, residual_g_per_kwh * (1 + rm_lo) AS residual_lo,
           1 + m_lo AS emb_lo,
           it_j * (1 + e_hi) * (1 + $p * (greatest(1.0, pue * (1 + u_hi)) - 1.0)) AS j_hi,
           emissions_g(it_j * (1 + e_hi), g_per_kwh * (1 + i_hi), 1.0)
             + $p * emissions_g(it_j * (1 + e_hi), g_per_kwh * (1 + i_hi), greatest(1.0, pue * (1 + u_hi)) - 1.0)
             AS g_hi,
           instrument_g_per_j * (1 + ct_hi) AS instrument_hi, residual_g_per_kwh * (1 + rm_hi) AS residual_hi,
           1 + m_hi AS emb_hi
    FROM b
),
priced AS (
    SELECT phase, project,
           scope2_market_part_g(j, g, instrument_g_per_j, uncovered_share, residual)
             + CASE WHEN $m THEN emb_g ELSE 0 END AS point_g,
           scope2_market_part_g(j_lo, g_lo, instrument_lo, uncovered_share, residual_lo)
             + CASE WHEN $m THEN emb_g * emb_lo ELSE 0 END AS low_g,
           scope2_market_part_g(j_hi, g_hi, instrument_hi, uncovered_share, residual_hi)
             + CASE WHEN $m THEN emb_g * emb_hi ELSE 0 END AS high_g
    FROM side
)
SELECT CASE WHEN grouping(phase) = 0 THEN 'phase' WHEN grouping(project) = 0 THEN 'project' ELSE 'total' END AS kind,
       coalesce(CASE WHEN grouping(phase) = 0 THEN phase ELSE project END, '') AS name,
       coalesce(exact_sum(point_g), 0) AS point_g, coalesce(exact_sum(low_g), 0) AS low_g,
       coalesce(exact_sum(high_g), 0) AS high_g
FROM priced
GROUP BY GROUPING SETS ((), (phase), (project))
ORDER BY kind, name
