// Seconds in a Prometheus duration ('90s', '1h30m', '500ms'), as exporter/durations.py reads it: the
// mixin's rules compare ages with thresholds in seconds and leave out a `for:` of zero.
local units = { y: 365 * 86400, w: 7 * 86400, d: 86400, h: 3600, m: 60, s: 1, ms: 0.001 };
local isDigit(char) = std.length(std.findSubstr(char, '0123456789')) > 0;

local flush(state) =
  if state.number == '' then
    assert state.unit == '' : 'not a Prometheus duration: a unit without a number';
    state
  else
    assert std.objectHas(units, state.unit) : 'not a Prometheus duration unit: "%s"' % state.unit;
    state { total: state.total + std.parseInt(state.number) * units[state.unit], number: '', unit: '' };

local step(state, char) =
  if isDigit(char) then
    (if state.unit != '' then flush(state) else state) + { number+: char }
  else
    state { unit+: char };

{
  seconds(duration)::
    assert std.isString(duration) && duration != '' : 'a duration must be a string such as "5m"';
    local parsed = flush(std.foldl(step, std.stringChars(duration), { total: 0, number: '', unit: '' }));
    parsed.total,
}
