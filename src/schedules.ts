// `pipewright/schedule`: schedules as data for library users. Generate one by name, change its
// per-worker action lists or write them from scratch, check them, and pass the object to
// createPipeline({ schedule }).
export { generateSchedule, SCHEDULE_NAMES, type ScheduleName, type ScheduleOptions } from "./pipeline/schedule/index.js";
export { validateSchedule, assertValidSchedule, type ValidationResult } from "./pipeline/schedule/validate.js";
export { formatAction, parseAction, type Action, type Schedule } from "./pipeline/schedule/action.js";
export { execute, type Execution, type ExecutionCosts } from "./pipeline/schedule/execute.js";
