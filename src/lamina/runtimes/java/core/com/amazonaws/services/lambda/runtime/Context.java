package com.amazonaws.services.lambda.runtime;

/** The invocation's context, with the method names of aws-lambda-java-core. */
public interface Context {
    String getAwsRequestId();
    String getLogGroupName();
    String getLogStreamName();
    String getFunctionName();
    String getFunctionVersion();
    String getInvokedFunctionArn();
    CognitoIdentity getIdentity();
    ClientContext getClientContext();
    int getRemainingTimeInMillis();
    int getMemoryLimitInMB();
    LambdaLogger getLogger();
    default String getXrayTraceId() { return null; }
    default String getTenantId() { return null; }
}
