// The filterBy grammar of the API (docs/contract.md §5): <field><operator><value>. The dashboard only builds
// terms and sends them; the server does all filtering, so what the table shows is exactly the API's
// answer for the same terms.

export const OPERATORS = [
  ['==', 'is'],
  ['!=', 'is not'],
  ['=@', 'contains'],
  ['!@', 'does not contain'],
  ['=^', 'starts with'],
  ['=$', 'ends with'],
  ['<=', 'at most'],
  ['>=', 'at least'],
];

// Time and number fields take only == != <= >= (anything else is a 400 from the API).
const ORDERED = ['==', '!=', '<=', '>='];

export const FIELDS = [
  ['name', 'Name', 'text'],
  ['phase', 'Phase', 'text'],
  ['type', 'Type', 'text'],
  ['projectName', 'Project', 'text'],
  ['departmentName', 'Department', 'text'],
  ['category', 'Category', 'text'],
  ['priorityClassName', 'Priority class', 'text'],
  ['submittedBy', 'Submitted by', 'text'],
  ['nodepool', 'Node pool', 'text'],
  ['clusterId', 'Cluster id', 'text'],
  ['projectId', 'Project id', 'text'],
  ['departmentId', 'Department id', 'text'],
  ['distributedFramework', 'Distributed framework', 'text'],
  ['aiApplicationName', 'AI application', 'text'],
  ['aiApplicationId', 'AI application id', 'text'],
  ['allocatedGPU', 'Allocated GPUs', 'number'],
  ['priority', 'Priority', 'number'],
  ['totalPendingTimeSeconds', 'Pending time (s)', 'number'],
  ['totalRunningTimeSeconds', 'Running time (s)', 'number'],
  ['idleAllocatedGpus', 'Idle allocated GPUs', 'number'],
  ['idleGpus', 'Idle GPUs', 'number'],
  ['createdAt', 'Created', 'time'],
  ['phaseUpdatedAt', 'Phase updated', 'time'],
  ['completedAt', 'Completed', 'time'],
  ['deletedAt', 'Deleted', 'time'],
  ['guaranteedRuntimeEndsAt', 'Guaranteed runtime ends', 'time'],
];

const FIELD_BY_NAME = new Map(FIELDS.map(([name, label, kind]) => [name, { name, label, kind }]));

export const fieldInfo = (name) => FIELD_BY_NAME.get(name) || { name, label: name, kind: 'text' };

export function operatorsFor(fieldName) {
  const { kind } = fieldInfo(fieldName);
  return kind === 'text' ? OPERATORS : OPERATORS.filter(([op]) => ORDERED.includes(op));
}

export const operatorLabel = (op) => (OPERATORS.find(([o]) => o === op) || [op, op])[1];

/** "phase==Running" → {field, op, value}; the first operator after the field name wins. */
export function parseTerm(term) {
  const match = /^([A-Za-z]+)(==|!=|<=|>=|=@|!@|=\^|=\$)(.*)$/s.exec(term);
  return match ? { field: match[1], op: match[2], value: match[3] } : null;
}

export const formatTerm = ({ field, op, value }) => `${field}${op}${value}`;
