// The Runtime API loop (2018-06-01) on Go's standard library: what aws-lambda-go's lambda.Start does.
package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"log"
	"net/http"
	"os"
	"reflect"
	"runtime/debug"
	"strconv"
	"strings"
	"time"
)

// Context is the invocation's context: the fields of aws-lambda-go's lambdacontext.LambdaContext.
type Context struct {
	AwsRequestID       string
	InvokedFunctionArn string
	Deadline           time.Time
	TraceID            string
	Identity           json.RawMessage
	ClientContext      json.RawMessage
	FunctionName       string
	FunctionVersion    string
	MemoryLimitInMB    int
	LogGroupName       string
	LogStreamName      string
}

// RemainingTime until the invocation times out (never negative).
func (c *Context) RemainingTime() time.Duration {
	if left := time.Until(c.Deadline); left > 0 {
		return left
	}
	return 0
}

// Handler is the function: the raw event in, a value to encode as JSON (or an error) out.
type Handler func(ctx *Context, event json.RawMessage) (any, error)

type errorBody struct {
	ErrorMessage string   `json:"errorMessage"`
	ErrorType    string   `json:"errorType"`
	StackTrace   []string `json:"stackTrace,omitempty"`
}

type client struct {
	base string
	http *http.Client
}

func (c *client) post(path string, body []byte, errorType string) {
	req, err := http.NewRequest(http.MethodPost, c.base+path, bytes.NewReader(body))
	if err != nil {
		log.Fatalf("runtime: %v", err)
	}
	req.Header.Set("Content-Type", "application/json")
	if errorType != "" {
		req.Header.Set("Lambda-Runtime-Function-Error-Type", errorType)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		log.Fatalf("runtime: POST %s: %v", path, err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
}

func errorType(err error) string {
	t := reflect.TypeOf(err)
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	return t.Name()
}

// Start runs the loop forever: next event, call the handler, post its result or error.
func Start(handler Handler) {
	log.SetFlags(0)
	c := &client{
		base: "http://" + os.Getenv("AWS_LAMBDA_RUNTIME_API") + "/2018-06-01/runtime",
		http: &http.Client{}, // no timeout: /next is a long poll
	}
	memory, _ := strconv.Atoi(os.Getenv("AWS_LAMBDA_FUNCTION_MEMORY_SIZE"))
	for {
		resp, err := c.http.Get(c.base + "/invocation/next")
		if err != nil {
			log.Fatalf("runtime: GET next: %v", err)
		}
		event, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil || resp.StatusCode != http.StatusOK {
			log.Fatalf("runtime: GET next: status %d, %v", resp.StatusCode, err)
		}
		deadline, _ := strconv.ParseInt(resp.Header.Get("Lambda-Runtime-Deadline-Ms"), 10, 64)
		ctx := &Context{
			AwsRequestID:       resp.Header.Get("Lambda-Runtime-Aws-Request-Id"),
			InvokedFunctionArn: resp.Header.Get("Lambda-Runtime-Invoked-Function-Arn"),
			Deadline:           time.UnixMilli(deadline),
			TraceID:            resp.Header.Get("Lambda-Runtime-Trace-Id"),
			Identity:           json.RawMessage(resp.Header.Get("Lambda-Runtime-Cognito-Identity")),
			ClientContext:      json.RawMessage(resp.Header.Get("Lambda-Runtime-Client-Context")),
			FunctionName:       os.Getenv("AWS_LAMBDA_FUNCTION_NAME"),
			FunctionVersion:    os.Getenv("AWS_LAMBDA_FUNCTION_VERSION"),
			MemoryLimitInMB:    memory,
			LogGroupName:       os.Getenv("AWS_LAMBDA_LOG_GROUP_NAME"),
			LogStreamName:      os.Getenv("AWS_LAMBDA_LOG_STREAM_NAME"),
		}
		os.Setenv("_X_AMZN_TRACE_ID", ctx.TraceID)
		result, body, kind := invoke(handler, ctx, event)
		if kind != "" {
			c.post("/invocation/"+ctx.AwsRequestID+"/error", body, kind)
			continue
		}
		c.post("/invocation/"+ctx.AwsRequestID+"/response", result, "")
	}
}

// invoke calls the handler, turning a returned error or a panic into Lambda's error body.
func invoke(handler Handler, ctx *Context, event []byte) (result []byte, body []byte, kind string) {
	defer func() {
		if p := recover(); p != nil {
			stack := strings.Split(strings.TrimSpace(string(debug.Stack())), "\n")
			body, _ = json.Marshal(errorBody{fmt.Sprint(p), "Runtime.Panic", stack})
			os.Stderr.Write(append(body, '\n'))
			result, kind = nil, "Runtime.Panic"
		}
	}()
	value, err := handler(ctx, json.RawMessage(event))
	if err != nil {
		body, _ = json.Marshal(errorBody{ErrorMessage: err.Error(), ErrorType: errorType(err)})
		os.Stderr.Write(append(body, '\n'))
		return nil, body, "Function.Error"
	}
	result, err = json.Marshal(value)
	if err != nil {
		body, _ = json.Marshal(errorBody{ErrorMessage: err.Error(), ErrorType: "Runtime.MarshalError"})
		return nil, body, "Runtime.MarshalError"
	}
	return result, nil, ""
}
