// A starter Go function: greets whoever the event names.
//
// Lambda runs Go as provided.al2023: the package holds one executable named `bootstrap`. Build it
// with the standard library only (runtime.go is the Runtime API loop, no module downloads):
//
//	CGO_ENABLED=0 GOOS=linux go build -o bootstrap . && lamina deploy .
package main

import (
	"encoding/json"
	"log"
)

type greeting struct {
	Message   string `json:"message"`
	RequestID string `json:"request_id"`
}

func handle(ctx *Context, event json.RawMessage) (any, error) {
	var in struct {
		Name string `json:"name"`
	}
	if err := json.Unmarshal(event, &in); err != nil {
		return nil, err
	}
	if in.Name == "" {
		in.Name = "world"
	}
	log.Printf("greeting %s", in.Name)
	return greeting{Message: "hello, " + in.Name, RequestID: ctx.AwsRequestID}, nil
}

func main() {
	Start(handle)
}
