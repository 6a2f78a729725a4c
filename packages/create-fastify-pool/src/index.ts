export { createProject, defaultTemplate, packageName, TargetNotEmptyError, type CreateOptions, type CreateResult } from './create.ts'
