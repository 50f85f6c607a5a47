-- wrk script: POST /users with a unique email per request.
local counter = 0
local thread_id = 0

function setup(thread)
  thread:set("id", thread_id)
  thread_id = thread_id + 1
end

function init(args)
  wrk.method = "POST"
  wrk.headers["Content-Type"] = "application/json"
end

function request()
  counter = counter + 1
  local body = string.format('{"name":"load %d-%d","email":"load-%d-%d@example.com","score":%d}', id, counter, id, counter, counter % 100)
  return wrk.format(nil, "/users", nil, body)
end
