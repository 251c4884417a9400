-- layer_sums(r): every column of layers.Sums (the joules, grams and seconds of each accounting layer) summed over
-- the rows r of rpt_rows (rpt_scope.sql), as one struct: written once here, unnested by each rpt_sums*.sql, which
-- differ only in what they group by. Called as layer_sums(rpt_rows): the table's name is its row as a struct.
CREATE OR REPLACE TEMP MACRO layer_sums(r) AS {
    'energy_j': sum(r.energy_j),
    'gpu_g': sum(r.gpu_g),
    'idle_j': sum(r.idle_j),
    'idle_g': sum(r.idle_g),
    'pue_gpu_j': sum(r.pue_gpu_j),
    'pue_gpu_g': sum(r.pue_gpu_g),
    'pue_idle_j': sum(r.pue_idle_j),
    'pue_idle_g': sum(r.pue_idle_g),
    'emb_g': sum(r.emb_g),
    'gpu_s': sum(r.gpu_seconds),
    'cpu_j': sum(r.cpu_j),
    'cpu_g': sum(r.cpu_g),
    'cpu_pkg_j': sum(r.cpu_j) FILTER (WHERE r.domain = 'package'),
    'cpu_dram_j': sum(r.cpu_j) FILTER (WHERE r.domain = 'dram'),
    'cpu_s': sum(r.cpu_seconds),
    'cpu_idle_j': sum(r.cpu_idle_j),
    'cpu_idle_g': sum(r.cpu_idle_g),
    'pue_cpu_j': sum(r.pue_cpu_j),
    'pue_cpu_g': sum(r.pue_cpu_g),
    'pue_cpu_idle_j': sum(r.pue_cpu_idle_j),
    'pue_cpu_idle_g': sum(r.pue_cpu_idle_g),
    'node_j': sum(r.node_j),
    'node_g': sum(r.node_g),
    'node_idle_j': sum(r.node_idle_j),
    'node_idle_g': sum(r.node_idle_g),
    'pue_node_j': sum(r.pue_node_j),
    'pue_node_g': sum(r.pue_node_g),
    'pue_node_idle_j': sum(r.pue_node_idle_j),
    'pue_node_idle_g': sum(r.pue_node_idle_g)
}
