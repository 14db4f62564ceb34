// The captaindata-exporter monitoring mixin: its alerts, recording rules and Grafana dashboards, bent by
// `_config` as kubernetes-mixin and node-mixin are:
//
//   (import 'mixin.libsonnet') + { _config+:: { selector: 'job="captaindata", env="prod"', runningTooLong: '2h' } }
//
// config.libsonnet holds the `_config` defaults (mixin/README.md lists the keys). The data beside this file is
// generated, never edited: config.libsonnet and rules.libsonnet by deploy/generate.py (with the defaults,
// the same groups as deploy/prometheus/captaindata-alerts.rules.yml) and dashboards/*.json by
// grafana/generate.py (the same as grafana/dashboards/). They live inside mixin/ so that jsonnet-bundler can
// vendor this directory alone.
local rules = import 'rules.libsonnet';
local recording(group) = std.all([std.objectHas(rule, 'record') for rule in group.rules]);

// The dashboard with its runbook links (the hidden runbook_base_url variable) at `url`.
local withRunbooks(board, url) = board {
  templating+: {
    list: [
      if variable.name == 'runbook_base_url'
      then variable { query: url, current+: { text: url, value: url } }
      else variable
      for variable in super.list
    ],
  },
};

(import 'config.libsonnet') + {
  local groups = rules($._config).groups,

  prometheusAlerts+:: {
    groups+: [group for group in groups if !recording(group)],
  },
  prometheusRules+:: {
    groups+: [group for group in groups if recording(group)],
  },
  grafanaDashboards+:: {
    'captaindata-overview.json': withRunbooks(import 'dashboards/captaindata-overview.json', $._config.runbookBaseUrl),
    'captaindata-workflow.json': withRunbooks(import 'dashboards/captaindata-workflow.json', $._config.runbookBaseUrl),
  },
}
