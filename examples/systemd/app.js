// The service's routes (the same on both listeners here).
export default async function api (app) {
  app.get('/', async () => ({ hello: 'world', pid: process.pid }))
}
