-- wrk script: GET /users/{id} over ids 1..1000.
local counter = 0
function request()
  counter = counter + 1
  return wrk.format("GET", "/users/" .. ((counter % 1000) + 1))
end
