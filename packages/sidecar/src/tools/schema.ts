// A small JSON-Schema subset for tool arguments: type (object, string, number,
// integer, boolean, array, null), properties, required, enum, items,
// additionalProperties: false, minimum/maximum, maxLength. Enough to refuse
// what a model gets wrong (missing or mistyped arguments) with a clear
// message, without a schema-compiler dependency.

export interface JsonSchemaLite {
  type?: "object" | "string" | "number" | "integer" | "boolean" | "array" | "null";
  description?: string;
  properties?: Record<string, JsonSchemaLite>;
  required?: string[];
  additionalProperties?: boolean;
  items?: JsonSchemaLite;
  enum?: unknown[];
  minimum?: number;
  maximum?: number;
  maxLength?: number;
}

const TYPES = new Set(["object", "string", "number", "integer", "boolean", "array", "null"]);

function typeOf(value: unknown): string {
  if (value === null) return "null";
  if (Array.isArray(value)) return "array";
  return typeof value;
}

/** Problems with the schema itself; empty when it is usable. */
export function checkSchema(schema: unknown, path = "parameters"): string[] {
  if (typeof schema !== "object" || schema === null || Array.isArray(schema)) return [`${path} must be an object`];
  const s = schema as JsonSchemaLite;
  const problems: string[] = [];
  if (s.type !== undefined && !TYPES.has(s.type)) problems.push(`${path}.type "${String(s.type)}" is not supported`);
  if (s.required !== undefined && (!Array.isArray(s.required) || s.required.some((r) => typeof r !== "string"))) {
    problems.push(`${path}.required must be an array of strings`);
  }
  for (const [key, sub] of Object.entries(s.properties ?? {})) problems.push(...checkSchema(sub, `${path}.properties.${key}`));
  if (s.items !== undefined) problems.push(...checkSchema(s.items, `${path}.items`));
  return problems;
}

/** Every way `value` breaks `schema`; empty when it conforms. */
export function validate(value: unknown, schema: JsonSchemaLite, path = "arguments"): string[] {
  const problems: string[] = [];
  const actual = typeOf(value);
  if (schema.type !== undefined) {
    const ok =
      schema.type === actual ||
      (schema.type === "integer" && actual === "number" && Number.isInteger(value)) ||
      (schema.type === "number" && actual === "number");
    if (!ok) {
      problems.push(`${path} must be ${schema.type === "integer" ? "an integer" : `of type ${schema.type}`}, got ${actual}`);
      return problems;
    }
  }
  if (schema.enum !== undefined && !schema.enum.some((option) => option === value)) {
    problems.push(`${path} must be one of ${schema.enum.map((o) => JSON.stringify(o)).join(", ")}`);
  }
  if (typeof value === "number") {
    if (schema.minimum !== undefined && value < schema.minimum) problems.push(`${path} must be >= ${schema.minimum}`);
    if (schema.maximum !== undefined && value > schema.maximum) problems.push(`${path} must be <= ${schema.maximum}`);
  }
  if (typeof value === "string" && schema.maxLength !== undefined && value.length > schema.maxLength) {
    problems.push(`${path} must be at most ${schema.maxLength} characters`);
  }
  if (Array.isArray(value) && schema.items !== undefined) {
    value.forEach((item, i) => problems.push(...validate(item, schema.items as JsonSchemaLite, `${path}[${i}]`)));
  }
  if (actual === "object") {
    const record = value as Record<string, unknown>;
    for (const key of schema.required ?? []) {
      if (!(key in record)) problems.push(`${path}.${key} is required`);
    }
    for (const [key, item] of Object.entries(record)) {
      const sub = schema.properties?.[key];
      if (sub !== undefined) problems.push(...validate(item, sub, `${path}.${key}`));
      else if (schema.additionalProperties === false) problems.push(`${path}.${key} is not a known argument`);
    }
  }
  return problems;
}
