// The captaindata-exporter monitoring mixin: its alerts, recording rules and Grafana dashboards.
//
// The data beside this file is generated, never edited: rules.json by deploy/generate.py (the same groups
// as deploy/prometheus/captaindata-alerts.rules.yml) and dashboards/*.json by grafana/generate.py (the same
// as grafana/dashboards/). They live inside mixin/ so that jsonnet-bundler can vendor this directory alone.
local rules = import 'rules.json';
local recording(group) = std.all([std.objectHas(rule, 'record') for rule in group.rules]);

{
  prometheusAlerts+:: {
    groups+: [group for group in rules.groups if !recording(group)],
  },
  prometheusRules+:: {
    groups+: [group for group in rules.groups if recording(group)],
  },
  grafanaDashboards+:: {
    'captaindata-overview.json': import 'dashboards/captaindata-overview.json',
    'captaindata-workflow.json': import 'dashboards/captaindata-workflow.json',
  },
}
